// TLS client settings as recipes and flags give them (the files to read), and their
// contents: a CA bundle that verifies the server and, for mutual TLS, a client
// certificate and key. Used by rollout.workers, `r1kit generate --worker` and the
// `remote` reward (docs/rollout.md, "TLS"; docs/rewards.md, "remote").
#pragma once

#include <string>
#include <string_view>

#include "core/config.h"
#include "core/status.h"

namespace r1kit {

struct TlsClientFiles {
  std::string ca_file;    // PEM CA bundle the server's certificate must chain to; "" = no TLS
  std::string cert_file;  // PEM client certificate chain (mutual TLS); with key_file
  std::string key_file;   // PEM private key of cert_file
  void visit(ConfigVisitor& v) {
    v.field("ca_file", ca_file,
            "PEM CA bundle that verifies the server (turns TLS on); empty = plaintext");
    v.field("cert_file", cert_file, "PEM client certificate for mutual TLS (with key_file)");
    v.field("key_file", key_file, "PEM private key of cert_file");
  }
  // cert_file and key_file go together, and only with ca_file.
  Status validate() const;
};

// The files' contents; `ca` empty = plaintext.
struct TlsClientPem {
  std::string ca, cert, key;
  bool enabled() const { return !ca.empty(); }
};

// Reads the files of `f` (checked with validate()); errors name `what` ("rollout.tls").
StatusOr<TlsClientPem> read_tls_client_files(const TlsClientFiles& f, std::string_view what);

// Whether a gRPC target names this host only: localhost, 127.0.0.0/8, ::1 or a unix
// socket ("unix:PATH"), with or without a "dns:///", "ipv4:" or "ipv6:" prefix.
bool is_loopback_target(std::string_view target);

}  // namespace r1kit

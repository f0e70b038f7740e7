// TLS client files: reading and checking them; see tls_files.h.
#include "core/tls_files.h"

#include <arpa/inet.h>

#include <string>

#include "core/atomic_file.h"

namespace r1kit {

Status TlsClientFiles::validate() const {
  if (cert_file.empty() != key_file.empty())
    return InvalidArgument("tls: cert_file and key_file go together (mutual TLS)");
  if (!cert_file.empty() && ca_file.empty())
    return InvalidArgument("tls: a client certificate needs ca_file (TLS) as well");
  return OkStatus();
}

StatusOr<TlsClientPem> read_tls_client_files(const TlsClientFiles& f, std::string_view what) {
  Status st = f.validate();
  if (!st.ok()) return st.with_context(what);
  TlsClientPem pem;
  if (f.ca_file.empty()) return pem;
  ASSIGN_OR_RETURN(pem.ca, read_file(f.ca_file, fmt::format("{}.ca_file", what)));
  if (pem.ca.empty()) return InvalidArgument("{}.ca_file '{}': empty", what, f.ca_file);
  if (!f.cert_file.empty()) {
    ASSIGN_OR_RETURN(pem.cert, read_file(f.cert_file, fmt::format("{}.cert_file", what)));
    ASSIGN_OR_RETURN(pem.key, read_file(f.key_file, fmt::format("{}.key_file", what)));
  }
  return pem;
}

bool is_loopback_target(std::string_view t) {
  if (t.starts_with("unix:") || t.starts_with("unix-abstract:")) return true;
  for (std::string_view prefix : {"dns:///", "ipv4:", "ipv6:"})
    if (t.starts_with(prefix)) t.remove_prefix(prefix.size());
  std::string_view host = t;
  if (t.starts_with('[')) {
    host = t.substr(1, t.find(']') == t.npos ? t.npos : t.find(']') - 1);
  } else if (size_t colon = t.rfind(':'); colon != t.npos) {
    host = t.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};  // an IPv4 literal in 127.0.0.0/8 (not a DNS name that starts with "127.")
  return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

}  // namespace r1kit

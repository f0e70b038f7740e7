// gRPC channel credentials from TLS client files' contents (core/tls_files.h): TLS that
// verifies the server against the CA bundle, with the client certificate when one is
// given; plaintext when there is no CA. Header-only, for the gRPC clients of
// rollout/grpc and reward/grpc (both link gRPC; neither links the other).
#pragma once

#include <grpcpp/security/credentials.h>

#include <memory>

#include "core/tls_files.h"

namespace r1kit {

inline std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsClientPem& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls.ca;
  ssl.pem_cert_chain = tls.cert;
  ssl.pem_private_key = tls.key;
  return grpc::SslCredentials(ssl);
}

}  // namespace r1kit

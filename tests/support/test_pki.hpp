// Certificates for TLS tests, made with OpenSSL at test time (no key is checked in): a CA and
// leaves it signs, ECDSA or RSA, valid, expired or not yet valid, as PEM text.
#pragma once

#include <openssl/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace sluice::test {

struct Pem {
  std::string cert;  // the leaf, then its chain
  std::string key;
};

struct CertSpec {
  std::vector<std::string> names;  // subjectAltName DNS names; the first is also the CN
  bool rsa = false;                // RSA-2048 instead of ECDSA P-256
  long valid_from_days = -1;       // relative to now
  long valid_to_days = 30;
  const Pem* issuer = nullptr;  // sign with this CA (its chain appended); null: self-signed
  bool ca = false;              // basicConstraints CA:TRUE
};

Pem makeCertificate(const CertSpec& spec);

// A TLS Secret manifest (base64 data) for the manifests directory.
std::string tlsSecretYaml(const std::string& ns, const std::string& name, const Pem& pem);

// SHA-256 fingerprint (lower-case hex) of the first certificate in `cert_pem`.
std::string fingerprint(const std::string& cert_pem);
// The same of a parsed certificate (what a TLS client was shown, say).
std::string fingerprint(const X509* cert);

}  // namespace sluice::test

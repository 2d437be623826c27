// A serving certificate: the leaf, its chain and the private key, parsed once from PEM into
// OpenSSL objects and immutable afterwards. The PEM text (and so the key) exists only for the
// duration of fromPem(); the agent keeps nothing but these objects (issue 11: "private keys live
// only in OpenSSL objects").
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509.h>

#include "common/result.hpp"

namespace sluice::tls {

class Certificate {
public:
  ~Certificate();
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;

  // `cert_pem`: the leaf first, then its chain; `key_pem`: an RSA or EC private key (PKCS#1,
  // SEC1 or PKCS#8, unencrypted). Errors: no certificate, a key that does not parse or does not
  // match the leaf, a certificate that expired before `now`.
  static Result<std::shared_ptr<const Certificate>> fromPem(std::string_view cert_pem,
                                                            std::string_view key_pem,
                                                            std::time_t now);
  // An ECDSA P-256 certificate for `common_name`, valid for a year, signed by itself: the default
  // certificate when --default-ssl-certificate names none. Never written anywhere.
  static Result<std::shared_ptr<const Certificate>> selfSigned(std::string_view common_name);

  X509* leaf() const { return leaf_; }
  STACK_OF(X509) * chain() const { return chain_; }
  EVP_PKEY* key() const { return key_; }
  std::time_t notAfter() const { return not_after_; }
  // DNS names of the subjectAltName extension (or the subject CN when there is none).
  const std::vector<std::string>& names() const { return names_; }
  // "RSA-2048", "EC-P-256", ...
  const std::string& keyType() const { return key_type_; }
  // SHA-256 of the leaf (hex): two certificates with the same fingerprint serve alike.
  const std::string& fingerprint() const { return fingerprint_; }

private:
  Certificate() = default;
  Result<void> describe();

  X509* leaf_ = nullptr;
  STACK_OF(X509) * chain_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  std::time_t not_after_ = 0;
  std::vector<std::string> names_;
  std::string key_type_;
  std::string fingerprint_;
};

using CertificatePtr = std::shared_ptr<const Certificate>;

// Strict base64 (RFC 4648, padding required, no whitespace) as Kubernetes sends Secret data.
Result<std::string> decodeBase64(std::string_view text);

// Overwrites `s` with zeros before it is freed (key material that passed through a string).
void wipe(std::string& s);

}  // namespace sluice::tls

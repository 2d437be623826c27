#include "tls/certificate.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdio>

namespace sluice::tls {

namespace {

// The first queued OpenSSL error as text (and the queue cleared), or `fallback`.
std::string sslError(std::string_view fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return std::string(fallback);
  }
  std::array<char, 256> buf{};
  ERR_error_string_n(code, buf.data(), buf.size());
  return buf.data();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memoryBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::time_t asn1Time(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return 0;
  }
  return timegm(&tm);
}

std::string utcText(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

}  // namespace

Certificate::~Certificate() {
  X509_free(leaf_);
  sk_X509_pop_free(chain_, X509_free);
  EVP_PKEY_free(key_);
}

Result<std::shared_ptr<const Certificate>> Certificate::fromPem(std::string_view cert_pem,
                                                                std::string_view key_pem,
                                                                std::time_t now) {
  ERR_clear_error();
  std::shared_ptr<Certificate> c(new Certificate());
  BioPtr certs = memoryBio(cert_pem);
  c->leaf_ = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
  if (c->leaf_ == nullptr) {
    return Error("tls.crt: no PEM certificate (" + sslError("empty") + ")");
  }
  c->chain_ = sk_X509_new_null();
  while (X509* extra = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(c->chain_, extra);
  }
  // The loop ends on "no start line" at the end of the text; anything else is a broken block.
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
    return Error("tls.crt: certificate " + std::to_string(sk_X509_num(c->chain_) + 2) +
                 " does not parse (" + sslError("") + ")");
  }
  ERR_clear_error();
  BioPtr key = memoryBio(key_pem);
  // No passphrase callback: an encrypted key is an error, never a prompt.
  c->key_ = PEM_read_bio_PrivateKey(
      key.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  if (c->key_ == nullptr) {
    return Error("tls.key: no unencrypted PEM private key (" + sslError("empty") + ")");
  }
  if (X509_check_private_key(c->leaf_, c->key_) != 1) {
    ERR_clear_error();
    return Error("tls.key does not match the certificate in tls.crt");
  }
  if (Result<void> d = c->describe(); !d) {
    return d.error();
  }
  if (c->not_after_ != 0 && c->not_after_ < now) {
    return Error("tls.crt expired at " + utcText(c->not_after_));
  }
  return std::shared_ptr<const Certificate>(std::move(c));
}

Result<void> Certificate::describe() {
  not_after_ = asn1Time(X509_get0_notAfter(leaf_));
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (X509_digest(leaf_, EVP_sha256(), md.data(), &md_len) != 1) {
    return Error("tls.crt: " + sslError("digest failed"));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < md_len; ++i) {
    fingerprint_ += kHex[md[i] >> 4];
    fingerprint_ += kHex[md[i] & 15];
  }
  const int bits = EVP_PKEY_get_bits(key_);
  if (EVP_PKEY_is_a(key_, "RSA")) {
    key_type_ = "RSA-" + std::to_string(bits);
  } else if (EVP_PKEY_is_a(key_, "EC")) {
    std::array<char, 64> group{};
    std::size_t len = 0;
    EVP_PKEY_get_group_name(key_, group.data(), group.size(), &len);
    key_type_ = "EC-" + std::string(group.data(), len);
  } else {
    key_type_ = EVP_PKEY_get0_type_name(key_) != nullptr ? EVP_PKEY_get0_type_name(key_) : "?";
  }
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf_, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      names_.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(sans);
  if (names_.empty()) {
    std::array<char, 256> cn{};
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf_), NID_commonName, cn.data(),
                                            static_cast<int>(cn.size()));
    if (n > 0) {
      names_.emplace_back(cn.data(), static_cast<std::size_t>(n));
    }
  }
  return {};
}

Result<std::shared_ptr<const Certificate>> Certificate::selfSigned(std::string_view common_name) {
  ERR_clear_error();
  std::shared_ptr<Certificate> c(new Certificate());
  c->key_ = EVP_EC_gen("P-256");
  c->leaf_ = X509_new();
  c->chain_ = sk_X509_new_null();
  if (c->key_ == nullptr || c->leaf_ == nullptr || c->chain_ == nullptr) {
    return Error("self-signed certificate: " + sslError("out of memory"));
  }
  X509* x = c->leaf_;
  X509_set_version(x, 2);
  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1) {
    return Error("self-signed certificate: " + sslError("no randomness"));
  }
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(x);
  const std::string cn(common_name);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Sluice"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, c->key_);
  if (X509_sign(x, c->key_, EVP_sha256()) == 0) {
    return Error("self-signed certificate: " + sslError("signing failed"));
  }
  if (Result<void> d = c->describe(); !d) {
    return d.error();
  }
  return std::shared_ptr<const Certificate>(std::move(c));
}

Result<std::string> decodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Error("base64: length is not a multiple of 4");
  }
  std::string out((text.size() / 4) * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    wipe(out);
    return Error("base64: invalid character");
  }
  // EVP_DecodeBlock counts padding as zero bytes: drop one per '='.
  std::size_t len = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '=' && len > 0; --i) {
    --len;
  }
  out.resize(len);
  return out;
}

void wipe(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
  s.clear();
}

}  // namespace sluice::tls

#include "support/test_pki.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <stdexcept>

#include "support/byte_stream.hpp"

namespace sluice::test {

namespace {

std::string bioText(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  std::string out(mem->data, mem->length);
  BIO_free(bio);
  return out;
}

void addExtension(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    throw std::runtime_error("test PKI: bad extension " + value);
  }
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

Pem makeCertificate(const CertSpec& spec) {
  EVP_PKEY* key = spec.rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  std::array<unsigned char, 12> serial{};
  RAND_bytes(serial.data(), static_cast<int>(serial.size()));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.valid_from_days * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.valid_to_days * 86400);
  const std::string cn = spec.names.empty() ? "test" : spec.names.front();
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_pubkey(x, key);
  X509* issuer_cert = nullptr;
  EVP_PKEY* issuer_key = key;
  if (spec.issuer != nullptr) {
    BIO* b = BIO_new_mem_buf(spec.issuer->cert.data(), static_cast<int>(spec.issuer->cert.size()));
    issuer_cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(spec.issuer->key.data(), static_cast<int>(spec.issuer->key.size()));
    issuer_key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
  } else {
    X509_set_issuer_name(x, X509_get_subject_name(x));
  }
  if (spec.ca) {
    addExtension(x, issuer_cert != nullptr ? issuer_cert : x, NID_basic_constraints,
                 "critical,CA:TRUE");
  }
  std::string san;
  for (const auto& n : spec.names) {
    san += (san.empty() ? "DNS:" : ",DNS:") + n;
  }
  if (!san.empty()) {
    addExtension(x, issuer_cert != nullptr ? issuer_cert : x, NID_subject_alt_name, san);
  }
  X509_sign(x, issuer_key, EVP_sha256());
  Pem out;
  BIO* cb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cb, x);
  out.cert = bioText(cb);
  if (spec.issuer != nullptr) {
    out.cert += spec.issuer->cert;
  }
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key = bioText(kb);
  if (issuer_key != key) {
    EVP_PKEY_free(issuer_key);
  }
  X509_free(issuer_cert);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

std::string tlsSecretYaml(const std::string& ns, const std::string& name, const Pem& pem) {
  auto b64 = [](const std::string& s) {
    std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(s.data()),
                                  static_cast<int>(s.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
  };
  return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: " + b64(pem.cert) +
         "\n  tls.key: " + b64(pem.key) + "\n";
}

std::string fingerprint(const std::string& cert_pem) {
  BIO* b = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  std::string out = fingerprint(x);
  X509_free(x);
  return out;
}

std::string fingerprint(const X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md.data(), &len);
  return toHex(md.data(), len);
}

}  // namespace sluice::test

// The region OpenSSL's transient buffers come from (tls/block_pool.hpp): slots are reused most
// recently freed first, a thread keeps a few, the rest give their pages back to the kernel, and a
// full region says so. The last tests install it as the agent's main() does and run TLS through
// it: every other test in this binary (certificate_test.cpp's handshakes among them) then
// allocates through it too.
#include "tls/block_pool.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace sluice::tls {
namespace {

// Before any test (and so before OpenSSL's first allocation in this process), as main() does.
const bool kInstalled = installOpenSslAllocator();

// Whether each page of the slot at `p` is resident.
std::vector<bool> residentPages(void* p) {
  std::vector<unsigned char> v(BlockPool::kSlotBytes / BlockPool::kPage);
  EXPECT_EQ(::mincore(p, BlockPool::kSlotBytes, v.data()), 0);
  std::vector<bool> out;
  for (const unsigned char c : v) {
    out.push_back((c & 1) != 0);
  }
  return out;
}

TEST(BlockPool, ServesOpenSslsTransientBufferSizesOnly) {
  for (const std::size_t n : {4096, 16584, 16712, 21848, 16385, 24576}) {
    EXPECT_TRUE(BlockPool::serves(n)) << n;
  }
  for (const std::size_t n : {0, 1, 100, 4095, 4097, 8192, 16384, 24577, 65536}) {
    EXPECT_FALSE(BlockPool::serves(n)) << n;
  }
}

TEST(BlockPool, SlotsArePageAlignedWritableAndOwned) {
  BlockPool pool(64 * BlockPool::kSlotBytes);
  ASSERT_TRUE(pool.ok());
  BlockPool::Front front;
  void* a = pool.allocate(&front);
  void* b = pool.allocate(&front);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % BlockPool::kPage, 0u);
  std::memset(a, 0xab, BlockPool::kSlotBytes);
  std::memset(b, 0xcd, BlockPool::kSlotBytes);
  EXPECT_EQ(static_cast<unsigned char*>(a)[BlockPool::kSlotBytes - 1], 0xab);
  EXPECT_TRUE(pool.owns(a));
  EXPECT_TRUE(pool.owns(static_cast<char*>(b) + BlockPool::kSlotBytes - 1));
  void* heap = std::malloc(100);
  EXPECT_FALSE(pool.owns(heap));
  std::free(heap);
  EXPECT_EQ(pool.stats().mapped_slots, 2u);
  pool.deallocate(&front, a);
  pool.deallocate(&front, b);
}

TEST(BlockPool, AThreadReusesItsLastFreedSlotWithItsPagesStillThere) {
  BlockPool pool(64 * BlockPool::kSlotBytes);
  BlockPool::Front front;
  void* a = pool.allocate(&front);
  std::memset(a, 1, BlockPool::kPage);  // one page written, as a small request does
  pool.deallocate(&front, a);
  EXPECT_EQ(front.count, 1u);
  EXPECT_EQ(pool.allocate(&front), a);
  EXPECT_TRUE(residentPages(a)[0]);
  EXPECT_EQ(static_cast<unsigned char*>(a)[0], 1);  // not cleared: OpenSSL writes before reading
  EXPECT_EQ(pool.stats().releases, 0u);
  pool.deallocate(&front, a);
}

TEST(BlockPool, SlotsBeyondWhatAThreadKeepsGiveTheirPagesBack) {
  BlockPool pool(64 * BlockPool::kSlotBytes);
  BlockPool::Front front;
  std::vector<void*> held;
  for (std::size_t i = 0; i < BlockPool::kKeepPerThread + 2; ++i) {
    held.push_back(pool.allocate(&front));
    std::memset(held.back(), 7, BlockPool::kSlotBytes);
  }
  for (void* p : held) {
    pool.deallocate(&front, p);
  }
  EXPECT_EQ(front.count, BlockPool::kKeepPerThread);
  const BlockPool::Stats s = pool.stats();
  EXPECT_EQ(s.released_slots, 2u);
  EXPECT_EQ(s.releases, 2u);
  // The last two freed went back: nothing of them is resident, and they read as zeroes.
  for (std::size_t i = BlockPool::kKeepPerThread; i < held.size(); ++i) {
    for (const bool resident : residentPages(held[i])) {
      EXPECT_FALSE(resident);
    }
    EXPECT_EQ(static_cast<unsigned char*>(held[i])[100], 0);
  }
  // Once the thread's own are used up, released slots are reused before new ones are mapped.
  const std::size_t mapped = s.mapped_slots;
  for (std::size_t i = 0; i < BlockPool::kKeepPerThread + 2; ++i) {
    pool.allocate(&front);
  }
  EXPECT_EQ(pool.stats().mapped_slots, mapped);
  EXPECT_EQ(pool.stats().released_slots, 0u);
}

TEST(BlockPool, DuringHandshakesAThreadKeepsMoreAndGivesTheExcessBackAfter) {
  BlockPool pool(64 * BlockPool::kSlotBytes);
  BlockPool::Front front;
  front.handshakes = 2;
  std::vector<void*> held;
  for (std::size_t i = 0; i < 40; ++i) {
    held.push_back(pool.allocate(&front));
    std::memset(held.back(), 7, BlockPool::kSlotBytes);
  }
  for (void* p : held) {
    pool.deallocate(&front, p);
  }
  EXPECT_EQ(front.count, 40u) << "no madvise while handshakes are under way";
  EXPECT_EQ(pool.stats().releases, 0u);
  pool.trim(front, BlockPool::kKeepPerThread);  // the last handshake ended
  EXPECT_EQ(front.count, BlockPool::kKeepPerThread);
  EXPECT_EQ(pool.stats().releases, 40u - BlockPool::kKeepPerThread);
  // The excess is the top of the stack: the last ones freed went back, the first ones stay.
  for (const bool resident : residentPages(held.back())) {
    EXPECT_FALSE(resident);
  }
  for (const bool resident : residentPages(held.front())) {
    EXPECT_TRUE(resident);
  }
  front.handshakes = 0;
  void* extra = pool.allocate(&front);
  void* more = pool.allocate(&front);
  pool.deallocate(&front, extra);
  pool.deallocate(&front, more);
  pool.deallocate(&front, pool.allocate(nullptr));
  EXPECT_EQ(front.count, BlockPool::kKeepPerThread) << "without handshakes, the usual keep";
}

TEST(BlockPool, DrainGivesBackWhatAThreadKept) {
  BlockPool pool(64 * BlockPool::kSlotBytes);
  BlockPool::Front front;
  void* a = pool.allocate(&front);
  std::memset(a, 7, BlockPool::kSlotBytes);
  pool.deallocate(&front, a);
  pool.drain(front);
  EXPECT_EQ(front.count, 0u);
  EXPECT_EQ(pool.stats().released_slots, 1u);
  EXPECT_FALSE(residentPages(a)[0]);
}

TEST(BlockPool, AFullRegionSaysSoAndCountsIt) {
  BlockPool pool(2 * BlockPool::kSlotBytes + 100);
  BlockPool::Front front;
  EXPECT_EQ(pool.stats().reserved_slots, 2u);
  EXPECT_NE(pool.allocate(&front), nullptr);
  EXPECT_NE(pool.allocate(&front), nullptr);
  EXPECT_EQ(pool.allocate(&front), nullptr);
  EXPECT_EQ(pool.stats().overflows, 1u);
}

TEST(BlockPool, TooSmallARegionServesNothing) {
  BlockPool pool(BlockPool::kSlotBytes - 1);
  EXPECT_FALSE(pool.ok());
}

// A TLS 1.3 connection over a BIO pair, as the agent configures its own (released buffers, read
// ahead), with a self-signed P-256 certificate.
struct Pair {
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* server = nullptr;
  SSL* client = nullptr;

  Pair() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(server_ctx, cert);
    SSL_CTX_use_PrivateKey(server_ctx, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    SSL_CTX_set_mode(server_ctx, SSL_MODE_RELEASE_BUFFERS);
    server = SSL_new(server_ctx);
    client = SSL_new(client_ctx);
    SSL_set_read_ahead(server, 1);
    BIO* s = nullptr;
    BIO* c = nullptr;
    BIO_new_bio_pair(&s, 0, &c, 0);
    SSL_set_bio(server, s, s);
    SSL_set_bio(client, c, c);
    SSL_set_accept_state(server);
    SSL_set_connect_state(client);
  }
  ~Pair() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;

  bool handshake() {
    for (int i = 0; i < 20; ++i) {
      const int c = SSL_do_handshake(client);
      const int s = SSL_do_handshake(server);
      if (c == 1 && s == 1) {
        return true;
      }
    }
    return false;
  }
  // `bytes` from one end to the other, in pieces as the BIO pair's buffer allows.
  std::string carry(SSL* from, SSL* to, const std::string& bytes) {
    std::string got;
    std::size_t sent = 0;
    char buf[4096];
    while (got.size() < bytes.size()) {
      if (sent < bytes.size()) {
        const int n = SSL_write(from, bytes.data() + sent, static_cast<int>(bytes.size() - sent));
        if (n > 0) {
          sent += static_cast<std::size_t>(n);
        }
      }
      const int r = SSL_read(to, buf, sizeof buf);
      if (r > 0) {
        got.append(buf, static_cast<std::size_t>(r));
      } else if (SSL_get_error(to, r) != SSL_ERROR_WANT_READ) {
        break;
      }
    }
    return got;
  }
};

TEST(OpenSslAllocator, IsInstalledBeforeOpenSslAllocates) {
  EXPECT_TRUE(kInstalled);
  EXPECT_EQ(openSslAllocatorProblem(), nullptr);
  ASSERT_NE(openSslBlockPool(), nullptr);
  EXPECT_TRUE(openSslBlockPool()->ok());
}

TEST(OpenSslAllocator, ServedSizesComeFromTheRegionAndTheRestFromTheHeap) {
  const BlockPool* pool = openSslBlockPool();
  ASSERT_NE(pool, nullptr);
  void* small = OPENSSL_malloc(100);
  void* page = OPENSSL_malloc(4096);
  void* record = OPENSSL_zalloc(16712);
  EXPECT_FALSE(pool->owns(small));
  EXPECT_TRUE(pool->owns(page));
  EXPECT_TRUE(pool->owns(record));
  EXPECT_EQ(static_cast<unsigned char*>(record)[16711], 0);
  EXPECT_EQ(OPENSSL_malloc(0), nullptr);  // as OpenSSL's own allocator
  OPENSSL_free(small);
  OPENSSL_free(page);
  OPENSSL_free(record);
  OPENSSL_free(nullptr);
}

// OpenSSL grows its handshake message buffer with realloc: within a slot it stays in place, past
// one it moves to the heap with its contents, and growing a heap block into a served size keeps
// it on the heap.
TEST(OpenSslAllocator, ReallocKeepsTheContentsWhereverTheBlockGoes) {
  const BlockPool* pool = openSslBlockPool();
  ASSERT_NE(pool, nullptr);
  auto* p = static_cast<unsigned char*>(OPENSSL_realloc(nullptr, 4096));
  ASSERT_TRUE(pool->owns(p));
  for (std::size_t i = 0; i < 4096; ++i) {
    p[i] = static_cast<unsigned char>(i * 7);
  }
  EXPECT_EQ(OPENSSL_realloc(p, 21848), p);  // the slot already holds it
  EXPECT_EQ(OPENSSL_realloc(p, 100), p);
  p[21847] = 0x5a;
  auto* q = static_cast<unsigned char*>(OPENSSL_realloc(p, 40000));
  ASSERT_NE(q, nullptr);
  EXPECT_FALSE(pool->owns(q));
  for (std::size_t i = 0; i < 4096; ++i) {
    ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7)) << i;
  }
  EXPECT_EQ(q[21847], 0x5a);
  OPENSSL_free(q);
  auto* h = static_cast<unsigned char*>(OPENSSL_malloc(1000));
  std::memset(h, 3, 1000);
  auto* g = static_cast<unsigned char*>(OPENSSL_realloc(h, 20000));
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(pool->owns(g));
  EXPECT_EQ(g[999], 3);
  EXPECT_EQ(OPENSSL_realloc(g, 0), nullptr);  // freed, as OpenSSL's own realloc does
  void* slot = OPENSSL_malloc(4096);
  ASSERT_TRUE(pool->owns(slot));
  EXPECT_EQ(OPENSSL_realloc(slot, 0), nullptr);
}

// A thread's kept slots go back when it exits, and what it freed beyond them went back at once.
TEST(OpenSslAllocator, AThreadsSlotsGoBackWhenItExits) {
  const BlockPool* pool = openSslBlockPool();
  ASSERT_NE(pool, nullptr);
  constexpr std::size_t kSlots = BlockPool::kKeepPerThread + 2;
  const std::uint64_t before = pool->stats().releases;
  std::vector<void*> used;
  std::uint64_t during = 0;
  std::thread t([&] {
    for (std::size_t i = 0; i < kSlots; ++i) {
      used.push_back(OPENSSL_malloc(16712));
      std::memset(used.back(), 1, 16712);
    }
    for (void* p : used) {
      OPENSSL_free(p);
    }
    during = pool->stats().releases;
  });
  t.join();
  EXPECT_EQ(during - before, kSlots - BlockPool::kKeepPerThread);
  EXPECT_EQ(pool->stats().releases - before, kSlots);
  for (void* p : used) {
    ASSERT_TRUE(pool->owns(p));
    for (const bool resident : residentPages(p)) {
      EXPECT_FALSE(resident);
    }
  }
}

TEST(OpenSslAllocator, ARunOfHandshakesKeepsItsSlotsUntilASecondWithoutOne) {
  const BlockPool* pool = openSslBlockPool();
  ASSERT_NE(pool, nullptr);
  constexpr std::size_t kSlots = 40;
  std::uint64_t kept = 0, still = 0, trimmed = 0;
  std::thread t([&] {  // a thread of its own: its kept slots start empty
    const std::uint64_t before = pool->stats().releases;
    handshakeBegins();
    std::vector<void*> used;
    for (std::size_t i = 0; i < kSlots; ++i) {
      used.push_back(OPENSSL_malloc(16712));
    }
    for (void* p : used) {
      OPENSSL_free(p);
    }
    handshakeEnds();
    kept = pool->stats().releases - before;
    trimAfterHandshakes();  // a handshake ended within this "second": kept still
    still = pool->stats().releases - before;
    trimAfterHandshakes();  // a second without one
    trimmed = pool->stats().releases - before;
  });
  t.join();
  EXPECT_EQ(kept, 0u);
  EXPECT_EQ(still, 0u);
  EXPECT_EQ(trimmed, kSlots - BlockPool::kKeepPerThread);
}

TEST(OpenSslAllocator, ConnectionsRunThroughIt) {
  ASSERT_NE(openSslBlockPool(), nullptr);
  const std::size_t mapped_before = openSslBlockPool()->stats().mapped_slots;
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 131 + i / 7);
  }
  for (int round = 0; round < 3; ++round) {
    Pair p;
    ASSERT_TRUE(p.handshake()) << ERR_error_string(ERR_get_error(), nullptr);
    EXPECT_EQ(p.carry(p.client, p.server, "GET / HTTP/1.1\r\n\r\n"), "GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(p.carry(p.server, p.client, big), big);  // full records, both buffers busy
    EXPECT_EQ(p.carry(p.client, p.server, big), big);
  }
  // The record buffers and handshake buffers came from the region, and went back to this
  // thread's slots or the shared list: the region holds no more than a connection's worth.
  const BlockPool::Stats s = openSslBlockPool()->stats();
  EXPECT_GT(s.mapped_slots, 0u);
  EXPECT_LE(s.mapped_slots - mapped_before, 2 * BlockPool::kKeepPerThread);
  EXPECT_EQ(s.overflows, 0u);
}

}  // namespace
}  // namespace sluice::tls

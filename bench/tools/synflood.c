// SPDX-License-Identifier: GPL-2.0-only
/*
 * synflood.c - bench/xdp.sh's packet generator: COUNT TCP SYNs, as Ethernet frames on an
 * AF_PACKET socket, from SRC (one address) to DST:PORT with source ports cycling through 4096
 * values. The frames are built once with valid checksums and sent with sendmmsg in batches of 64,
 * so the sender's own cost stays small and constant per packet.
 *
 *   synflood IFNAME SRC_MAC DST_MAC SRC_IP DST_IP PORT COUNT
 * Prints the packets sent, the seconds it took and its own CPU seconds (getrusage: the exact
 * runtime, which on a kernel without IRQ time accounting includes the softirq work run in its
 * context, i.e. the veth peer's receive processing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define FRAMES 4096
#define BATCH 64
#define LEN (14 + 20 + 24)

static uint16_t csum(const void* buf, size_t len, uint32_t sum) {
  const uint8_t* p = buf;

  for (size_t i = 0; i + 1 < len; i += 2)
    sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static int mac(const char* text, uint8_t out[6]) {
  return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &out[0], &out[1], &out[2], &out[3], &out[4],
                &out[5]) == 6
             ? 0
             : -1;
}

static void build(uint8_t* f, const uint8_t* smac, const uint8_t* dmac, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, uint32_t seq) {
  struct iphdr* ip = (struct iphdr*)(f + 14);
  struct tcphdr* tcp = (struct tcphdr*)(f + 34);
  uint8_t pseudo[12];
  uint32_t sum = 0;

  memcpy(f, dmac, 6);
  memcpy(f + 6, smac, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  memset(ip, 0, 20);
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons(20 + 24);
  ip->frag_off = htons(0x4000);
  ip->ttl = 64;
  ip->protocol = IPPROTO_TCP;
  ip->saddr = src;
  ip->daddr = dst;
  ip->check = htons(csum(ip, 20, 0));
  memset(tcp, 0, 24);
  tcp->source = htons(sport);
  tcp->dest = htons(dport);
  tcp->seq = htonl(seq);
  tcp->doff = 6;
  tcp->syn = 1;
  tcp->window = htons(64240);
  memcpy((uint8_t*)tcp + 20, "\x02\x04\x05\xb4", 4);
  memcpy(pseudo, &src, 4);
  memcpy(pseudo + 4, &dst, 4);
  pseudo[8] = 0;
  pseudo[9] = IPPROTO_TCP;
  pseudo[10] = 0;
  pseudo[11] = 24;
  for (int i = 0; i < 12; i += 2)
    sum += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
  tcp->check = htons(csum(tcp, 24, sum));
}

int main(int argc, char** argv) {
  static uint8_t frames[FRAMES][LEN];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_ll ll = {0};
  uint8_t smac[6], dmac[6];
  struct in_addr src, dst;
  struct timespec t0, t1;
  long count, sent = 0;
  int fd;

  if (argc != 8 || mac(argv[2], smac) || mac(argv[3], dmac) || !inet_aton(argv[4], &src) ||
      !inet_aton(argv[5], &dst)) {
    fprintf(stderr, "usage: %s IFNAME SRC_MAC DST_MAC SRC_IP DST_IP PORT COUNT\n", argv[0]);
    return 2;
  }
  count = atol(argv[7]);
  for (int i = 0; i < FRAMES; i++)
    build(frames[i], smac, dmac, src.s_addr, dst.s_addr, (uint16_t)(20000 + i),
          (uint16_t)atoi(argv[6]), 1000u + (uint32_t)i * 7919u);
  fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    perror("socket(AF_PACKET)");
    return 1;
  }
  ll.sll_family = AF_PACKET;
  ll.sll_ifindex = (int)if_nametoindex(argv[1]);
  ll.sll_halen = 6;
  memcpy(ll.sll_addr, dmac, 6);
  if (ll.sll_ifindex == 0 || bind(fd, (struct sockaddr*)&ll, sizeof(ll)) != 0) {
    perror(argv[1]);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (sent < count) {
    int n = count - sent < BATCH ? (int)(count - sent) : BATCH;

    for (int i = 0; i < n; i++) {
      iov[i].iov_base = frames[(sent + i) % FRAMES];
      iov[i].iov_len = LEN;
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (r < 0) {
      perror("sendmmsg");
      return 1;
    }
    sent += r;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("%ld %.6f %.6f\n", sent, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
         (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  return 0;
}

#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#ifndef MAP_ABOVE4G
#define MAP_ABOVE4G 0x80
#endif
/* x86's placement flags: MAP_32BIT bottom-up from 1 GiB (hint first if it fits below 2 GiB), MAP_ABOVE4G top-down above 4 GiB */
int main() {
  int anon = MAP_PRIVATE | MAP_ANONYMOUS;
  void *a = mmap(NULL, 8192, 3, anon | MAP_32BIT, -1, 0);
  void *b = mmap(NULL, 4096, 3, anon | MAP_32BIT, -1, 0);
  void *c = mmap(NULL, 4096, 3, anon | MAP_32BIT | MAP_ABOVE4G, -1, 0);
  void *d = mmap((void *)0x10000000, 4096, 3, anon | MAP_ABOVE4G, -1, 0);
  void *e = mmap(NULL, 4096, 3, anon | MAP_ABOVE4G, -1, 0);
  void *f = mmap((void *)0x50000000, 4096, 3, anon | MAP_32BIT, -1, 0);
  void *g = mmap((void *)0x7fff0000, 0x20000, 3, anon | MAP_32BIT, -1, 0);
  printf("32bit %p, 32bit %p, 32bit|above4g %p, above4g hint 0x10000000 %p, above4g %p, 32bit hint 0x50000000 %p, 32bit hint 0x7fff0000 len 0x20000 %p\n", a, b, c, d, e, f, g);
}

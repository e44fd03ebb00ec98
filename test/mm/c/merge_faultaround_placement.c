#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
static uint64_t pm(void *p) { int fd = open("/proc/self/pagemap", O_RDONLY); uint64_t e; pread(fd, &e, 8, ((uintptr_t)p/4096)*8); close(fd); return e; }
static void maps(const char *tag, void *lo, void *hi) { FILE *f = fopen("/proc/self/maps", "r"); char l[512]; printf("-- %s\n", tag);
  while (fgets(l, sizeof l, f)) { unsigned long a, b; sscanf(l, "%lx-%lx", &a, &b); if (a >= (unsigned long)lo && b <= (unsigned long)hi) printf("   %s", l); } fclose(f); }
int main() {
  char *H = (char*)0x300000000000;
  char *a = mmap(H, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  char *b = mmap(H+4096, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  maps("two adjacent anon (unfaulted)", H, H+(1<<20));
  a[0] = 1; b[0] = 1;
  char *c = mmap(H+8192, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  maps("third after faulting", H, H+(1<<20));
  c[0] = 1;
  mprotect(H+4096, 4096, PROT_READ);
  maps("mprotect middle RO", H, H+(1<<20));
  mprotect(H+4096, 4096, PROT_READ|PROT_WRITE);
  maps("mprotect middle back RW", H, H+(1<<20));
  munmap(H, 3*4096);
  /* two separately faulted anon mappings then adjacent: */
  a = mmap(H, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); a[0]=1;
  b = mmap(H+8192, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); b[0]=1;
  c = mmap(H+4096, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  maps("fill middle between two faulted", H, H+(1<<20));
  munmap(H, 3*4096);
  /* different prot */
  a = mmap(H, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  b = mmap(H+4096, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  maps("R then RW", H, H+(1<<20));
  munmap(H, 2*4096);
  /* file: adjacent pgoff */
  int fd = memfd_create("x", 0); ftruncate(fd, 64*4096);
  for (int i = 0; i < 64; i++) pwrite(fd, "z", 1, i*4096);
  a = mmap(H, 4096, PROT_READ, MAP_SHARED|MAP_FIXED, fd, 0);
  b = mmap(H+4096, 4096, PROT_READ, MAP_SHARED|MAP_FIXED, fd, 4096);
  c = mmap(H+8192, 4096, PROT_READ, MAP_SHARED|MAP_FIXED, fd, 3*4096);
  maps("file adjacent pgoff 0,1,3", H, H+(1<<20));
  munmap(H, 3*4096);
  /* fault around */
  char *s = mmap(H, 64*4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, fd, 0);
  volatile char x = s[5*4096]; (void)x;
  printf("fault-around shared read of page 5: present:");
  for (int i = 0; i < 40; i++) printf("%d", (int)(pm(s+i*4096)>>63)); printf("\n");
  munmap(s, 64*4096);
  s = mmap(H, 64*4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, fd, 0);
  s[21*4096] = 1;
  printf("shared write of page 21: present:");
  for (int i = 0; i < 40; i++) printf("%d", (int)(pm(s+i*4096)>>63)); printf("\n");
  munmap(s, 64*4096);
  s = mmap(H+3*4096, 20*4096, PROT_READ, MAP_PRIVATE|MAP_FIXED, fd, 7*4096);
  x = s[0];
  printf("private read at vma start (pgoff 7, addr idx 3): present:");
  for (int i = 0; i < 24; i++) printf("%d", (int)(pm(H+i*4096)>>63)); printf("\n");
  munmap(s, 20*4096);
  /* address allocation */
  void *p1 = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *p2 = mmap(0, 2<<20, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *p3 = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *p4 = mmap(0, 4<<20, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *p5 = mmap(0, 2<<20, PROT_READ, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  void *p6 = mmap(0, 2<<20, PROT_READ, MAP_SHARED, fd, 0);
  printf("p1=%p p2=%p(p1-p2=%lx) p3=%p(p2-p3=%lx) p4=%p(p3-p4=%lx) p5=%p (p4-p5=%lx) p6=%p (p5-p6=%lx)\n", p1, p2, (char*)p1-(char*)p2, p3, (char*)p2-(char*)p3, p4, (char*)p3-(char*)p4, p5, (char*)p4-(char*)p5, p6, (char*)p5-(char*)p6);
  return 0;
}

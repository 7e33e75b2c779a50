// The floor under any synchronous pipe protocol on this machine: one process sends 8 bytes, another answers.
// Usage: gcc -O2 pipe-round-trip.c -o rt && ./rt SPIN_NS PAIRS   (SPIN_NS: busy-poll before blocking)
#include <sys/wait.h>
#include <stdio.h>
#include <unistd.h>
#include <time.h>
#include <fcntl.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
static long now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
static int rd(int fd,char*c,long spin){long end=now()+spin;for(;;){int r=read(fd,c,64);if(r>0)return r;if(r==0)return 0;if(errno!=EAGAIN)return -1;if(now()>end){struct pollfd p={fd,POLLIN,0};poll(&p,1,-1);}}}
int main(int argc,char**argv){long spin=atol(argv[1]);int pairs=atoi(argv[2]);
for(int k=0;k<pairs;k++) if(fork()==0){
int a[2],b[2];pipe(a);pipe(b);fcntl(a[0],F_SETFL,O_NONBLOCK);fcntl(b[0],F_SETFL,O_NONBLOCK);
if(fork()==0){char c[64];while(rd(a[0],c,spin)>0)write(b[1],c,8);_exit(0);}
char c[64]; int n=50000; long t0=now();
for(int i=0;i<n;i++){write(a[1],c,8);rd(b[0],c,spin);}
printf("spin %ld ns, %d pairs: %.2f us per round trip\n",spin,pairs,(now()-t0)/(double)n/1000.0);fflush(stdout);_exit(0);}
for(int k=0;k<pairs;k++) wait(NULL);}

/* broker/cluster/aio_release.c: io_destroy(2) off the event loop (why and how: aio_release.h). */
#include "aio_release.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long number, ...);

struct pending {
    struct pending *next;
    long ctx;
};

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
static syscall_fn libc_syscall; /* NULL: not found (every call then fails with ENOSYS) */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct pending *head;  /* under lock; the thread takes the whole list */
static bool running;          /* under lock: the thread exists */
static atomic_ulong handed, done;

static void resolve(void)
{
    libc_syscall = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
}

static void *release_contexts(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!head)
            pthread_cond_wait(&wake, &lock);
        struct pending *list = head;
        head = NULL;
        pthread_mutex_unlock(&lock);
        while (list) {
            struct pending *next = list->next;
            libc_syscall(SYS_io_destroy, list->ctx);
            free(list);
            atomic_fetch_add(&done, 1);
            list = next;
        }
    }
    return NULL;
}

/* Under lock. The thread blocks every signal: they stay the loop's (server.c's signalfd). */
static bool start_thread(void)
{
    if (running)
        return true;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    running = pthread_create(&thread, &attr, release_contexts, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return running;
}

bool aio_release_start(void)
{
    pthread_once(&resolved, resolve);
    pthread_mutex_lock(&lock);
    bool ok = libc_syscall && start_thread();
    pthread_mutex_unlock(&lock);
    return ok;
}

unsigned long aio_release_handed(void)
{
    return atomic_load(&handed);
}

unsigned long aio_release_done(void)
{
    return atomic_load(&done);
}

/* Queues ctx for the thread; false (the caller destroys it itself) when that cannot be done. */
static bool hand_over(long ctx)
{
    struct pending *p = malloc(sizeof *p);
    if (!p)
        return false;
    p->ctx = ctx;
    pthread_mutex_lock(&lock);
    if (!running) { /* never started (no cluster node): as without this file */
        pthread_mutex_unlock(&lock);
        free(p);
        return false;
    }
    p->next = head;
    head = p;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    atomic_fetch_add(&handed, 1);
    return true;
}

/* libc's syscall(3), as the libraries of this process reach it. Six arguments are read and
 * passed on whatever the call takes, as libc's own syscall does (they are registers). */
long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    pthread_once(&resolved, resolve);
    if (number == SYS_io_destroy && hand_over(a[0]))
        return 0;
    if (!libc_syscall) {
        errno = ENOSYS;
        return -1;
    }
    return libc_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

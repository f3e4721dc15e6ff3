/*
 * nana_loop.h - an event loop: one epoll instance run by one thread, with
 * file descriptor sources, timers, before-sleep hooks and posts from other
 * threads. Every transport (QUIC on UDP, later TCP) runs its connections on
 * these loops; this header is the module's whole public face.
 *
 * Who owns what:
 * - A loop belongs to the one thread that runs it: the thread
 *   nana_loop_start started, or the caller of nana_loop_run. Its sources,
 *   timers and hooks are added, changed and removed on that thread only
 *   (or before the loop runs), and their callbacks run there.
 * - nana_loop_post, nana_loop_post_open and nana_loop_stop are the only
 *   functions safe from any thread. A post is the way another thread hands
 *   work to a loop.
 * - Sources, timers, hooks and posts are the caller's objects, embedded in
 *   its own structures: the loop only links them. It never allocates after
 *   nana_loop_new, and never frees them.
 *
 * One iteration: wait (epoll) until a source is ready, the earliest timer is
 * due or a post arrives; read the clock once (nana_loop_now); run the posts
 * in the order they were posted; call each ready source; run the timers due;
 * call the before-sleep hooks (where work gathered during the iteration is
 * flushed, once); sleep again.
 *
 * Errors: 0 or a negative NANA_ERR_* (util/nana_err.h) with a detail in
 * nana_errmsg().
 */
#ifndef NANA_LOOP_H
#define NANA_LOOP_H

#include "util/nana_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

typedef struct nana_loop nana_loop;

/* ---- the loop --------------------------------------------------------- */

/*
 * Creates a loop (its epoll instance and the eventfd posts wake it with).
 * |name| (at most 15 bytes are kept) names its thread. *out is the
 * caller's (nana_loop_free). NANA_ERR_IO when a descriptor cannot be made,
 * NANA_ERR_NOMEM.
 */
int nana_loop_new(const char *name, nana_loop **out);

/* Starts a thread that runs the loop until nana_loop_stop. NANA_ERR_NOMEM
 * (or NANA_ERR_INVALID when it already runs). */
int nana_loop_start(nana_loop *loop);

/* Runs the loop on the calling thread until nana_loop_stop. Returns 0, or
 * NANA_ERR_IO when waiting failed (the loop then stops, as after
 * nana_loop_stop). */
int nana_loop_run(nana_loop *loop);

/*
 * Asks the loop to stop (any thread, also the loop's own; returns at once).
 * The loop finishes its iteration, then runs the posts queued by then, then
 * its exit hooks (nana_loop_exit_hook_add) and returns. Posts that arrive
 * later are cancelled: see nana_loop_drain. Once asked to stop, a loop does
 * not run again.
 */
void nana_loop_stop(nana_loop *loop);

/* Waits for the thread nana_loop_start started (after nana_loop_stop).
 * Not on the loop's own thread. */
void nana_loop_join(nana_loop *loop);

/* Stops and joins a started loop, drains it (nana_loop_drain) and frees
 * it. The sources, timers and hooks still linked are the caller's.
 * NULL-safe. */
void nana_loop_free(nana_loop *loop);

/* True if the calling thread is the one running |loop|. */
bool nana_loop_on_thread(const nana_loop *loop);

/* The monotonic clock in ns as read at the start of this iteration (the
 * loop's thread). */
uint64_t nana_loop_now(const nana_loop *loop);

/* The monotonic clock in ns, read now (any thread). */
uint64_t nana_loop_clock(void);

/* CPU time the loop's thread has used, in ns (0 when no thread runs it). */
uint64_t nana_loop_cpu_ns(const nana_loop *loop);

/* ---- posts: work handed to the loop from any thread ---------------------- */

/*
 * A post: embed a struct nana_loop_post in your own object, set |run|, and
 * pass it to nana_loop_post. run(loop, post) is called exactly once: on the
 * loop's thread, or, when the loop ended before it could run the post, with
 * |loop| NULL on the thread that drains or frees the loop (the post is
 * cancelled: release what it holds, touch nothing of the loop's). Put the
 * post first in your struct, or subtract its offset, to get back to your
 * object. A post may be posted again once its run function started.
 * (No typedef: the function has the name.)
 */
struct nana_loop_post {
    struct nana_loop_post *next; /* the loop's */
    void (*run)(nana_loop *loop, struct nana_loop_post *post);
};

/*
 * Queues |post| for the loop (any thread). Never fails, never allocates,
 * never sleeps: a mutex held for a few instructions, and an eventfd write
 * when the queue was empty. Posts run in the order they were posted
 * (one poster's posts in its order; between posters, the order they took
 * the mutex). A post that arrives after the loop ended is cancelled by
 * nana_loop_drain (run with |loop| NULL) instead.
 */
void nana_loop_post(nana_loop *loop, struct nana_loop_post *post);

/*
 * nana_loop_post, unless the loop was asked to stop: then |post| is not
 * queued and NANA_ERR_CLOSED is returned. A post accepted here always runs
 * on the loop's thread (never cancelled).
 */
int nana_loop_post_open(nana_loop *loop, struct nana_loop_post *post);

/*
 * Cancels every post the loop will never run: calls run(NULL, post) for
 * each on the calling thread, in the order they were posted, and returns
 * how many. Only once the loop has returned (or if it never ran); posts
 * that arrive meanwhile are cancelled by a later call, at the latest by
 * nana_loop_free. So every post is run exactly once, by the loop or
 * cancelled here: none is lost.
 */
size_t nana_loop_drain(nana_loop *loop);

/* ---- file descriptor sources ---------------------------------------- */

/* A descriptor the loop watches: fn(loop, src, events) when it is ready
 * (events: EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP ...). Level-triggered. */
typedef struct nana_loop_fd {
    int fd;
    uint32_t events;
    void (*fn)(nana_loop *loop, struct nana_loop_fd *src, uint32_t events);
} nana_loop_fd;

/* Starts watching |fd| for |events| through |src| (loop thread, or before
 * it runs). NANA_ERR_IO when epoll refuses it. */
int nana_loop_fd_add(nana_loop *loop, nana_loop_fd *src, int fd, uint32_t events,
                     void (*fn)(nana_loop *loop, nana_loop_fd *src, uint32_t events));

/* Changes what |src| waits for. NANA_ERR_IO when epoll refuses it. */
int nana_loop_fd_mod(nana_loop *loop, nana_loop_fd *src, uint32_t events);

/* Stops watching |src| (its descriptor stays open: the caller closes it).
 * Its callback is not called again, not even for an event already read in
 * this iteration. NANA_ERR_IO when epoll refuses (the source is forgotten
 * all the same). */
int nana_loop_fd_del(nana_loop *loop, nana_loop_fd *src);

/* ---- timers ------------------------------------------------------------ */

/* A timer: fn(loop, t) once at |when| (nana_loop_clock time). The loop
 * keeps armed timers in a pairing heap linked through them. */
typedef struct nana_loop_timer {
    uint64_t when;
    void (*fn)(nana_loop *loop, struct nana_loop_timer *t);
    struct nana_loop_timer *child, *sibling, *prev; /* the heap's */
    uint64_t seq;                                   /* arming order */
    bool armed;
} nana_loop_timer;

/* Prepares a disarmed timer that calls |fn|. */
void nana_loop_timer_init(nana_loop_timer *t, void (*fn)(nana_loop *loop, nana_loop_timer *t));

/* Arms |t| for |when| (absolute, ns); an armed timer moves to the new time.
 * A time already past fires in this iteration or the next. Loop thread. */
void nana_loop_timer_start(nana_loop *loop, nana_loop_timer *t, uint64_t when);

/* Disarms |t| (nothing if it is not armed). Loop thread. */
void nana_loop_timer_stop(nana_loop *loop, nana_loop_timer *t);

/* True while |t| is armed. */
bool nana_loop_timer_armed(const nana_loop_timer *t);

/* ---- hooks ------------------------------------------------------------- */

/* A function the loop calls once per iteration before it sleeps (flushing
 * what the iteration gathered), or once when it exits. */
typedef struct nana_loop_hook {
    struct nana_loop_hook *next; /* the loop's */
    void (*fn)(nana_loop *loop, struct nana_loop_hook *hook);
} nana_loop_hook;

/* Adds / removes a before-sleep hook (loop thread, or before it runs).
 * Hooks run in the order they were added. */
void nana_loop_hook_add(nana_loop *loop, nana_loop_hook *hook);
void nana_loop_hook_del(nana_loop *loop, nana_loop_hook *hook);

/* Adds / removes an exit hook: called on the loop's thread after its last
 * posts ran, when it stops (to close what it carries and flush). */
void nana_loop_exit_hook_add(nana_loop *loop, nana_loop_hook *hook);
void nana_loop_exit_hook_del(nana_loop *loop, nana_loop_hook *hook);

/* ---- system calls ---------------------------------------------------- */

/*
 * The system calls the loop and the transports' I/O make, called through
 * this table. It holds the real calls; tests replace entries (before any
 * loop or socket that uses them exists) to make a chosen call fail. Nothing
 * else changes it.
 */
typedef struct nana_loop_sys {
    int (*epoll_create1)(int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
    int (*eventfd)(unsigned int initval, int flags);
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
    int (*recvmmsg)(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
                    struct timespec *timeout);
    int (*sendmmsg)(int fd, struct mmsghdr *msgs, unsigned int n, int flags);
    int (*listen)(int fd, int backlog);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
} nana_loop_sys;

extern nana_loop_sys nana_loop_sys_calls;

#endif

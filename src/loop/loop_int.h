/*
 * loop_int.h - the loop's structure, shared by the files of src/loop.
 * Nothing outside the module includes it except its tests.
 */
#ifndef NANA_LOOP_INT_H
#define NANA_LOOP_INT_H

#include "loop/nana_loop.h"

#include <pthread.h>

#define NANA_LOOP_EVENTS 16 /* epoll events taken per wait */

struct nana_loop {
    int epfd;
    int efd; /* eventfd: written when a post lands in an empty queue */
    char name[16];
    pthread_t thread; /* nana_loop_start's */
    bool started;     /* a thread was started and not joined yet */
    bool ran;         /* run or started (by the owner's thread): it never runs twice */
    /* posts (under mu) */
    pthread_mutex_t mu;
    struct nana_loop_post *head, *tail;
    bool stopping; /* nana_loop_stop was called */
    bool done;     /* the loop returned: posts wait for nana_loop_drain */
    /* the loop's thread only */
    uint64_t now;
    bool pwait2;             /* epoll_pwait2 works (nanosecond timeouts) */
    nana_loop_timer *timers; /* the heap's root */
    uint64_t timer_seq;
    nana_loop_hook *hooks, *exit_hooks;
    struct epoll_event ev[NANA_LOOP_EVENTS];
    int ev_n; /* events of this iteration not yet dispatched are ev[0..ev_n) */
};

/* Runs the timers due at loop->now (timer.c). */
void nana_loop_timers_run(nana_loop *loop);

#endif

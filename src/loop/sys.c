/*
 * sys.c - the table of system calls the loop and the transports' I/O make
 * (see nana_loop_sys in nana_loop.h): the real calls, which tests replace
 * to make one fail.
 */
#include "loop/nana_loop.h"

#include <sys/eventfd.h>

nana_loop_sys nana_loop_sys_calls = {
    .epoll_create1 = epoll_create1,
    .epoll_ctl = epoll_ctl,
    .eventfd = eventfd,
    .socket = socket,
    .bind = bind,
    .setsockopt = setsockopt,
    .recvmmsg = recvmmsg,
    .sendmmsg = sendmmsg,
    .listen = listen,
    .accept4 = accept4,
    .connect = connect,
};

/*
 * nana_addr.h - a socket address as text for logs: "1.2.3.4:443" or
 * "[::1]:443".
 */
#ifndef NANA_ADDR_H
#define NANA_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Writes |a| (AF_INET or AF_INET6; anything else reads "?") into |out|
 * (|n| bytes, always terminated). */
void nana_addr_text(const struct sockaddr_storage *a, char *out, size_t n);

#endif

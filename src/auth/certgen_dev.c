/*
 * certgen_dev.c - a whole development certificate set in one call: a CA, a
 * server certificate for localhost and a client certificate from it, and
 * on request an untrusted CA with a client certificate of its own. Used by
 * the tests, the benchmarks, nanasqlite-quic-echo and a server's first
 * start with no certificates configured.
 */
#include "auth/nana_certgen.h"

#include "util/nana_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *const nana_certgen_dev_names[NANA_DEV_FILES] = {
    "ca.pem",     "ca.key",       "server.pem",   "server.key", "client.pem",
    "client.key", "other-ca.pem", "other-ca.key", "rogue.pem",  "rogue.key",
};

int nana_certgen_dev_set(const char *dir, const char *client_cn, unsigned days, int with_untrusted)
{
    if (!dir || !*dir || !client_cn || !*client_cn)
        return nana_err_set(NANA_ERR_INVALID, "a directory and a client name are needed");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return nana_err_set(errno == EACCES ? NANA_ERR_PERM : NANA_ERR_IO, "cannot create %s: %s",
                            dir, strerror(errno));
    char p[NANA_DEV_FILES][1024];
    for (int i = 0; i < NANA_DEV_FILES; i++)
        if ((size_t)snprintf(p[i], sizeof(p[i]), "%s/%s", dir, nana_certgen_dev_names[i]) >=
            sizeof(p[i]))
            return nana_err_set(NANA_ERR_INVALID, "the directory name is too long");
    static const char *const dns[] = {"localhost"};
    static const char *const ips[] = {"127.0.0.1", "::1"};
    nana_cert_spec ca = {.common_name = "nanasqlite dev CA", .days = days, .is_ca = 1};
    nana_cert_spec srv = {.common_name = "localhost",
                          .dns_names = dns,
                          .n_dns = 1,
                          .ip_addrs = ips,
                          .n_ip = 2,
                          .days = days,
                          .server = 1};
    nana_cert_spec cli = {.common_name = client_cn, .days = days, .client = 1};
    int rc = nana_certgen_write(&ca, NULL, NULL, p[NANA_DEV_CA], p[NANA_DEV_CA_KEY], 1);
    if (!rc)
        rc = nana_certgen_write(&srv, p[NANA_DEV_CA], p[NANA_DEV_CA_KEY], p[NANA_DEV_SERVER],
                                p[NANA_DEV_SERVER_KEY], 1);
    if (!rc)
        rc = nana_certgen_write(&cli, p[NANA_DEV_CA], p[NANA_DEV_CA_KEY], p[NANA_DEV_CLIENT],
                                p[NANA_DEV_CLIENT_KEY], 1);
    if (rc || !with_untrusted) return rc;
    nana_cert_spec other = {.common_name = "untrusted dev CA", .days = days, .is_ca = 1};
    nana_cert_spec rogue = {.common_name = "mallory", .days = days, .client = 1};
    rc = nana_certgen_write(&other, NULL, NULL, p[NANA_DEV_OTHER_CA], p[NANA_DEV_OTHER_CA_KEY], 1);
    if (!rc)
        rc = nana_certgen_write(&rogue, p[NANA_DEV_OTHER_CA], p[NANA_DEV_OTHER_CA_KEY],
                                p[NANA_DEV_ROGUE], p[NANA_DEV_ROGUE_KEY], 1);
    return rc;
}

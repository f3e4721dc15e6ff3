/*
 * nana_tlspeer.h - a TLS server's client certificates (mutual TLS) on a
 * GnuTLS session, the same for every transport that carries a door (QUIC,
 * TCP): asking for one, checking it during the handshake, and reading a
 * verified one into a nana_cert_identity.
 *
 * The check is ours rather than GnuTLS's own (gnutls_session_set_verify_cert)
 * because that one refuses a client without a certificate even when one is
 * only requested. Our CAs are not listed to the client: a GnuTLS client would
 * then quietly withhold a certificate from any other CA, and the refusal would
 * not say it was untrusted.
 */
#ifndef NANA_TLSPEER_H
#define NANA_TLSPEER_H

#include "auth/nana_identity.h"

#include <gnutls/gnutls.h>
#include <stdbool.h>

/* Server session |s| asks for a client certificate (|require|: refuses a
 * client without one) and checks the one given against the credentials'
 * trust anchors during the handshake. */
void nana_tlspeer_request(gnutls_session_t s, bool require);

/* The handshake's check (what nana_tlspeer_request installs): 0 when the
 * peer gave no certificate or one that verifies, else
 * GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR. */
int nana_tlspeer_verify(gnutls_session_t s);

/* After the handshake: fills |id| from the peer's certificate when it gave
 * one that verifies (verified = true), else leaves |id| all zero. */
void nana_tlspeer_identity(gnutls_session_t s, nana_cert_identity *id);

#endif

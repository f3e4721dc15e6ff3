/*
 * tlspeer.c - client certificates on a GnuTLS server session (see
 * nana_tlspeer.h): asked for, checked in the handshake, read into the
 * identity every door shares (its two fingerprints and its subject).
 */
#include "auth/nana_tlspeer.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <string.h>

void nana_tlspeer_request(gnutls_session_t s, bool require)
{
    gnutls_certificate_server_set_request(s, require ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
    gnutls_session_set_verify_function(s, nana_tlspeer_verify);
    gnutls_certificate_send_x509_rdn_sequence(s, 1);
}

int nana_tlspeer_verify(gnutls_session_t s)
{
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (!peers || n == 0) return 0;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
        return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    return 0;
}

/* Fills |id|'s fingerprints and subject from a certificate (DER). */
static void identity_from_der(nana_cert_identity *id, const gnutls_datum_t *der)
{
    gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, id->cert_sha256);
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) return;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) == 0) {
        gnutls_datum_t dn = {NULL, 0};
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            size_t n = dn.size < sizeof(id->subject) - 1 ? dn.size : sizeof(id->subject) - 1;
            memcpy(id->subject, dn.data, n);
            id->subject[n] = '\0';
            gnutls_free(dn.data);
        }
        gnutls_pubkey_t pk;
        if (gnutls_pubkey_init(&pk) == 0) {
            gnutls_datum_t spki = {NULL, 0};
            if (gnutls_pubkey_import_x509(pk, crt, 0) == 0 &&
                gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &spki) == 0) {
                gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, id->spki_sha256);
                gnutls_free(spki.data);
            }
            gnutls_pubkey_deinit(pk);
        }
    }
    gnutls_x509_crt_deinit(crt);
}

void nana_tlspeer_identity(gnutls_session_t s, nana_cert_identity *id)
{
    memset(id, 0, sizeof(*id));
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (!peers || n == 0) return;
    unsigned status = 0;
    /* The handshake already refused certificates that do not verify;
     * check again so `verified` never lies. */
    if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0) return;
    identity_from_der(id, &peers[0]);
    id->verified = true;
}

#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
// OpenSSL 3 (Debian's libssl-dev) for GenTCPTLS, plus inline wrappers for what OpenSSL spells as
// macros, which Swift cannot call.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static inline int gentcp_tls_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version) {
    if (!SSL_CTX_set_min_proto_version(ctx, min_version)) return 0;
    return (int)SSL_CTX_set_max_proto_version(ctx, max_version);
}

/// No renegotiation, no compression; a peer's attempt to renegotiate is refused.
static inline void gentcp_tls_ctx_harden(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

static inline int gentcp_tls_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline int gentcp_tls_version_1_2(void) { return TLS1_2_VERSION; }
static inline int gentcp_tls_version_1_3(void) { return TLS1_3_VERSION; }
static inline int gentcp_tls_cb_alert(void) { return SSL_CB_ALERT; }
static inline int gentcp_tls_cb_read(void) { return SSL_CB_READ; }
static inline int gentcp_tls_cb_write(void) { return SSL_CB_WRITE; }
static inline int gentcp_tls_received_shutdown(void) { return SSL_RECEIVED_SHUTDOWN; }

static inline void gentcp_tls_free(void *pointer) { OPENSSL_free(pointer); }

#endif

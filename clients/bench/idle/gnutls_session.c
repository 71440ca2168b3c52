/* clients/bench/idle/gnutls_session.c: what one idle GnuTLS server session holds, measured as
 * live malloc bytes (mallinfo2) in one process: N server sessions set up as Warren sets them up
 * (transport_tls.c), then each handshaken with an in-process client over a socketpair and one
 * small application record exchanged each way, then the clients freed. Prints the bytes per
 * server session after gnutls_init and once established and idle.
 *
 *   cc -O1 -o /tmp/gnutls_session clients/bench/idle/gnutls_session.c -lgnutls
 *   /tmp/gnutls_session server.pem server.key ["PRIORITY"]
 */
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/socket.h>

#define SESSIONS 500

static size_t live_bytes(void) { return mallinfo2().uordblks; }

/* Drives both ends of a non-blocking handshake until each finished; 0 or -1. */
static int handshake_pair(gnutls_session_t server, gnutls_session_t client)
{
    int rs = GNUTLS_E_AGAIN, rc = GNUTLS_E_AGAIN;
    while (rs < 0 || rc < 0) {
        if (rs < 0)
            rs = gnutls_handshake(server);
        if (rc < 0)
            rc = gnutls_handshake(client);
        if ((rs < 0 && rs != GNUTLS_E_AGAIN) || (rc < 0 && rc != GNUTLS_E_AGAIN)) {
            fprintf(stderr, "handshake: %s / %s\n", gnutls_strerror(rs), gnutls_strerror(rc));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CERT.pem KEY.pem [PRIORITY]\n", argv[0]);
        return 2;
    }
    static gnutls_session_t servers[SESSIONS], clients[SESSIONS];
    gnutls_certificate_credentials_t server_cred, client_cred;
    gnutls_priority_t priority;
    gnutls_global_init();
    gnutls_certificate_allocate_credentials(&server_cred);
    gnutls_certificate_allocate_credentials(&client_cred);
    if (gnutls_certificate_set_x509_key_file(server_cred, argv[1], argv[2], GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_priority_init(&priority, argc > 3 ? argv[3] : "NORMAL", NULL) < 0) {
        fprintf(stderr, "cannot load the certificate or the priority string\n");
        return 1;
    }
    size_t start = live_bytes();
    for (int i = 0; i < SESSIONS; i++) {
        gnutls_init(&servers[i], GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
        gnutls_priority_set(servers[i], priority);
        gnutls_credentials_set(servers[i], GNUTLS_CRD_CERTIFICATE, server_cred);
    }
    size_t initialised = live_bytes();
    for (int i = 0; i < SESSIONS; i++) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
            return 1;
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        fcntl(fds[1], F_SETFL, O_NONBLOCK);
        gnutls_transport_set_int(servers[i], fds[0]);
        gnutls_init(&clients[i], GNUTLS_CLIENT | GNUTLS_NONBLOCK);
        gnutls_set_default_priority(clients[i]);
        gnutls_credentials_set(clients[i], GNUTLS_CRD_CERTIFICATE, client_cred);
        gnutls_transport_set_int(clients[i], fds[1]);
        if (handshake_pair(servers[i], clients[i]) < 0)
            return 1;
        char buf[64];
        gnutls_record_send(clients[i], "AMQP\0\0\11\1", 8);
        while (gnutls_record_recv(servers[i], buf, sizeof buf) == GNUTLS_E_AGAIN)
            ;
        gnutls_record_send(servers[i], buf, 8);
        while (gnutls_record_recv(clients[i], buf, sizeof buf) == GNUTLS_E_AGAIN)
            ;
    }
    for (int i = 0; i < SESSIONS; i++)
        gnutls_deinit(clients[i]);
    size_t idle = live_bytes();
    printf("%s, %s: per server session %.0f B after gnutls_init, %.0f B established and idle\n",
           argc > 3 ? argv[3] : "NORMAL", gnutls_protocol_get_name(gnutls_protocol_get_version(servers[0])),
           (double)(initialised - start) / SESSIONS, (double)(idle - start) / SESSIONS);
    return 0;
}

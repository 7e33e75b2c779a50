/* The raw reference for draining RabbitMQ queues from process start: rabbitmq-c alone, one connection,
 * a channel and a consumer per queue with the given prefetch, every body copied and acknowledged singly,
 * until EXPECTED messages have arrived. Buffers are released only when no frame is queued (releasing
 * them on every receive walks every channel × queued frame: minutes at 120 queues × prefetch 64).
 * Prints "first" at the first message and "done N" at the end.
 *   cc -O2 -o raw-amqp-drain raw-amqp-drain.c -lrabbitmq
 *   raw-amqp-drain HOST PORT VHOST PREFETCH EXPECTED PREFIX FROM TO   (queues PREFIX<FROM> … PREFIX<TO>) */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(amqp_rpc_reply_t reply, const char *what) {
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) { fprintf(stderr, "%s failed\n", what); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT VHOST PREFETCH EXPECTED PREFIX FROM TO\n", argv[0]);
        return 2;
    }
    int prefetch = atoi(argv[4]), from = atoi(argv[7]), to = atoi(argv[8]);
    long expected = atol(argv[5]);
    amqp_connection_state_t state = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(state);
    if (amqp_socket_open(socket, argv[1], atoi(argv[2])) != AMQP_STATUS_OK) { fprintf(stderr, "connect failed\n"); return 1; }
    check(amqp_login(state, argv[3], 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    char name[512];
    for (int q = from; q <= to; q++) {
        amqp_channel_t channel = (amqp_channel_t)(q - from + 1);
        amqp_channel_open(state, channel);
        check(amqp_get_rpc_reply(state), "channel.open");
        amqp_basic_qos(state, channel, 0, (uint16_t)prefetch, 0);
        check(amqp_get_rpc_reply(state), "basic.qos");
        snprintf(name, sizeof name, "%s%d", argv[6], q);
        amqp_basic_consume(state, channel, amqp_cstring_bytes(name), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        check(amqp_get_rpc_reply(state), "basic.consume");
    }
    long received = 0;
    char *copy = malloc(1 << 20);
    while (received < expected) {
        if (amqp_frames_enqueued(state) == 0) amqp_maybe_release_buffers(state);
        amqp_envelope_t envelope;
        struct timeval timeout = {30, 0};
        amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, &timeout, 0);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) { fprintf(stderr, "consume failed after %ld\n", received); return 1; }
        size_t length = envelope.message.body.len < (1 << 20) ? envelope.message.body.len : (1 << 20);
        memcpy(copy, envelope.message.body.bytes, length);
        amqp_basic_ack(state, envelope.channel, envelope.delivery_tag, 0);
        amqp_destroy_envelope(&envelope);
        if (received++ == 0) { printf("first\n"); fflush(stdout); }
    }
    printf("done %ld\n", received);
    amqp_connection_close(state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state);
    return 0;
}

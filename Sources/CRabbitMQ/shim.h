// Small C helpers over rabbitmq-c (Debian's librabbitmq-dev): the variadic login, and field tables, which
// are awkward to build and read from Swift.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/// The first certificate-verification error of the TLS handshake running on this thread (0: none), so that
/// a refused certificate can be named ("certificate has expired"); rabbitmq-c keeps it to itself.
/// (A function-local thread-local: Swift's C import emits it with the function, not a file-level one.)
static inline int *fw_tls_verify_error(void) {
    static __thread int error;
    return &error;
}

static inline int fw_tls_verify_callback(int ok, X509_STORE_CTX *store) {
    if (!ok && *fw_tls_verify_error() == 0) *fw_tls_verify_error() = X509_STORE_CTX_get_error(store);
    return ok; /* what OpenSSL's default callback returns: rabbitmq-c decides after the handshake */
}

/// Watches certificate verification on an SSL socket, without changing its outcome.
static inline void fw_tls_watch(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    if (context) SSL_CTX_set_verify(context, SSL_VERIFY_NONE, fw_tls_verify_callback);
    *fw_tls_verify_error() = 0;
}

/// Why the certificate was refused, in OpenSSL's words, or NULL when verification found nothing.
static inline const char *fw_tls_verify_error_text(void) {
    int error = *fw_tls_verify_error();
    return error == 0 ? NULL : X509_verify_cert_error_string(error);
}
#ifdef __linux__
#include <sys/eventfd.h>
/// An eventfd for waking an I/O thread (not exposed by Swift's Glibc module).
static inline int fw_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
#endif

static inline amqp_rpc_reply_t fw_login(amqp_connection_state_t state, const char *vhost, int heartbeat,
                                        const char *user, const char *password) {
    return amqp_login(state, vhost, 0, 131072, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/// Up to 8 table entries, each a string or a 64-bit integer, built in caller-provided storage.
typedef struct {
    amqp_table_entry_t entries[8];
    int count;
} fw_table;

static inline void fw_table_add_string(fw_table *table, const char *key, const char *value) {
    if (table->count >= 8) return;
    amqp_table_entry_t *entry = &table->entries[table->count++];
    entry->key = amqp_cstring_bytes(key);
    entry->value.kind = AMQP_FIELD_KIND_UTF8;
    entry->value.value.bytes = amqp_cstring_bytes(value);
}

static inline void fw_table_add_int(fw_table *table, const char *key, int64_t value) {
    if (table->count >= 8) return;
    amqp_table_entry_t *entry = &table->entries[table->count++];
    entry->key = amqp_cstring_bytes(key);
    entry->value.kind = AMQP_FIELD_KIND_I64;
    entry->value.value.i64 = value;
}

static inline void fw_table_add_bool(fw_table *table, const char *key, int value) {
    if (table->count >= 8) return;
    amqp_table_entry_t *entry = &table->entries[table->count++];
    entry->key = amqp_cstring_bytes(key);
    entry->value.kind = AMQP_FIELD_KIND_BOOLEAN;
    entry->value.value.boolean = value ? 1 : 0;
}

static inline amqp_table_t fw_table_get(fw_table *table) {
    amqp_table_t result;
    result.num_entries = table->count;
    result.entries = table->count > 0 ? table->entries : NULL;
    return result;
}

/// Declares a queue with the arguments in `arguments`.
static inline amqp_rpc_reply_t fw_queue_declare(amqp_connection_state_t state, amqp_channel_t channel,
                                                const char *queue, int passive, int durable, int exclusive,
                                                fw_table *arguments, uint32_t *message_count) {
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(state, channel, amqp_cstring_bytes(queue), passive, durable,
                                                     exclusive, 0, fw_table_get(arguments));
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(state);
    if (ok && message_count) *message_count = ok->message_count;
    return reply;
}

/// Starts a consumer; copies the broker's consumer tag into `tag` (NUL-terminated).
static inline amqp_rpc_reply_t fw_basic_consume(amqp_connection_state_t state, amqp_channel_t channel,
                                                const char *queue, char *tag, int capacity) {
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(state, channel, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(state);
    if (ok && tag && capacity > 0) {
        int n = (int)ok->consumer_tag.len < capacity - 1 ? (int)ok->consumer_tag.len : capacity - 1;
        memcpy(tag, ok->consumer_tag.bytes, n);
        tag[n] = 0;
    }
    return reply;
}

static inline amqp_rpc_reply_t fw_basic_cancel(amqp_connection_state_t state, amqp_channel_t channel,
                                               const char *tag) {
    amqp_basic_cancel(state, channel, amqp_cstring_bytes(tag));
    return amqp_get_rpc_reply(state);
}

static inline amqp_rpc_reply_t fw_basic_qos(amqp_connection_state_t state, amqp_channel_t channel, uint16_t prefetch) {
    amqp_basic_qos(state, channel, 0, prefetch, 0);
    return amqp_get_rpc_reply(state);
}

static inline amqp_rpc_reply_t fw_confirm_select(amqp_connection_state_t state, amqp_channel_t channel) {
    amqp_confirm_select(state, channel);
    return amqp_get_rpc_reply(state);
}

/// Answers the broker's channel.close (after a 404 on a passive declare, say), so that the channel can be
/// opened again on the same connection.
static inline int fw_channel_close_ok(amqp_connection_state_t state, amqp_channel_t channel) {
    amqp_channel_close_ok_t close_ok;
    close_ok.dummy = 0;
    return amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
}

static inline amqp_rpc_reply_t fw_channel_open(amqp_connection_state_t state, amqp_channel_t channel) {
    amqp_channel_open(state, channel);
    return amqp_get_rpc_reply(state);
}

/// Publishes a persistent JSON message with a type, id, timestamp and headers.
static inline int fw_publish(amqp_connection_state_t state, amqp_channel_t channel, const char *exchange,
                             const char *routing_key, const char *type, const char *message_id, uint64_t timestamp,
                             fw_table *headers, const void *body, size_t length) {
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG |
                   AMQP_BASIC_TIMESTAMP_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.timestamp = timestamp;
    props.headers = fw_table_get(headers);
    if (type && type[0]) {
        props._flags |= AMQP_BASIC_TYPE_FLAG;
        props.type = amqp_cstring_bytes(type);
    }
    if (message_id && message_id[0]) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(message_id);
    }
    amqp_bytes_t bytes;
    bytes.len = length;
    bytes.bytes = (void *)body;
    return amqp_basic_publish(state, channel, amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key), 0, 0,
                              &props, bytes);
}

/// Reads an integer header of a received message; returns `fallback` when absent or not an integer.
static inline int64_t fw_header_int(const amqp_basic_properties_t *props, const char *key, int64_t fallback) {
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return fallback;
    size_t length = strlen(key);
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *entry = &props->headers.entries[i];
        if (entry->key.len != length || memcmp(entry->key.bytes, key, length) != 0) continue;
        switch (entry->value.kind) {
        case AMQP_FIELD_KIND_I8: return entry->value.value.i8;
        case AMQP_FIELD_KIND_U8: return entry->value.value.u8;
        case AMQP_FIELD_KIND_I16: return entry->value.value.i16;
        case AMQP_FIELD_KIND_U16: return entry->value.value.u16;
        case AMQP_FIELD_KIND_I32: return entry->value.value.i32;
        case AMQP_FIELD_KIND_U32: return entry->value.value.u32;
        case AMQP_FIELD_KIND_I64: return entry->value.value.i64;
        case AMQP_FIELD_KIND_U64: return (int64_t)entry->value.value.u64;
        default: return fallback;
        }
    }
    return fallback;
}

/// Finds a header of a received message. Returns 0 when absent. Otherwise sets `kind` to 0 for a signed
/// integer (in `value`), 'L' for an unsigned 64-bit one (in `unsigned_value`), or the field's own kind
/// letter for anything else.
static inline int fw_header_field(const amqp_basic_properties_t *props, const char *key, uint8_t *kind,
                                  int64_t *value, uint64_t *unsigned_value) {
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return 0;
    size_t length = strlen(key);
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *entry = &props->headers.entries[i];
        if (entry->key.len != length || memcmp(entry->key.bytes, key, length) != 0) continue;
        *kind = 0;
        switch (entry->value.kind) {
        case AMQP_FIELD_KIND_I8: *value = entry->value.value.i8; return 1;
        case AMQP_FIELD_KIND_U8: *value = entry->value.value.u8; return 1;
        case AMQP_FIELD_KIND_I16: *value = entry->value.value.i16; return 1;
        case AMQP_FIELD_KIND_U16: *value = entry->value.value.u16; return 1;
        case AMQP_FIELD_KIND_I32: *value = entry->value.value.i32; return 1;
        case AMQP_FIELD_KIND_U32: *value = entry->value.value.u32; return 1;
        case AMQP_FIELD_KIND_I64: *value = entry->value.value.i64; return 1;
        case AMQP_FIELD_KIND_U64: *kind = 'L'; *unsigned_value = entry->value.value.u64; return 1;
        default: *kind = (uint8_t)entry->value.kind; return 1;
        }
    }
    return 0;
}

/// Copies a string header of a received message into `buffer`; returns its length, or -1 when absent.
static inline int fw_header_string(const amqp_basic_properties_t *props, const char *key, char *buffer, int capacity) {
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return -1;
    size_t length = strlen(key);
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *entry = &props->headers.entries[i];
        if (entry->key.len != length || memcmp(entry->key.bytes, key, length) != 0) continue;
        if (entry->value.kind != AMQP_FIELD_KIND_UTF8 && entry->value.kind != AMQP_FIELD_KIND_BYTES) return -1;
        int n = (int)entry->value.value.bytes.len < capacity ? (int)entry->value.value.bytes.len : capacity;
        memcpy(buffer, entry->value.value.bytes.bytes, n);
        return n;
    }
    return -1;
}

static inline amqp_basic_properties_t *fw_envelope_properties(amqp_envelope_t *envelope) {
    return &envelope->message.properties;
}

/// The method of a frame, when it is a method frame; 0 otherwise.
static inline amqp_method_number_t fw_frame_method(const amqp_frame_t *frame) {
    return frame->frame_type == AMQP_FRAME_METHOD ? frame->payload.method.id : 0;
}

static inline void *fw_frame_decoded(const amqp_frame_t *frame) { return frame->payload.method.decoded; }

static inline amqp_rpc_reply_t fw_queue_delete(amqp_connection_state_t state, amqp_channel_t channel,
                                               const char *queue) {
    amqp_queue_delete(state, channel, amqp_cstring_bytes(queue), 0, 0);
    return amqp_get_rpc_reply(state);
}

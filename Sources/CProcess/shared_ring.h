// A byte stream from one process to another through shared memory: one writer, one reader. The C11 atomics
// that order it across processes, which Swift cannot place in memory it maps from a file.
#ifndef FAIRWAY_CPROCESS_SHARED_RING_H
#define FAIRWAY_CPROCESS_SHARED_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/// The ring's header at the start of its memory; its bytes follow from `FW_RING_HEADER`. Positions only grow
/// (a byte's place is its position modulo the capacity). The other process can write anything here: each
/// side keeps its own position and only checks the other's.
typedef struct {
    _Atomic uint64_t written;        // bytes the writer has published
    char pad1[56];
    _Atomic uint64_t read;           // bytes the reader has taken
    char pad2[56];
    _Atomic uint32_t reader_sleeps;  // 1 while the reader sleeps, or is about to, until bytes come
    _Atomic uint32_t writer_waits;   // 1 while the writer sleeps, or is about to, until room frees
} fw_ring_header;

#define FW_RING_HEADER 4096

// The layout docs/worker-protocol.md gives other implementations.
_Static_assert(offsetof(fw_ring_header, read) == 64, "read at 64");
_Static_assert(offsetof(fw_ring_header, reader_sleeps) == 128, "reader_sleeps at 128");
_Static_assert(offsetof(fw_ring_header, writer_waits) == 132, "writer_waits at 132");

/// Copies up to `count` bytes into the ring at the writer's position `*written` and publishes them; returns
/// how many fitted. The reader is not woken here: see `fw_ring_wake_reader`.
static inline size_t fw_ring_write(void *ring, uint64_t capacity, uint64_t *written, const uint8_t *bytes,
                                   size_t count) {
    fw_ring_header *header = (fw_ring_header *)ring;
    uint8_t *data = (uint8_t *)ring + FW_RING_HEADER;
    uint64_t read = atomic_load_explicit(&header->read, memory_order_acquire);
    uint64_t used = *written - read;
    uint64_t space = used > capacity ? 0 : capacity - used;
    size_t take = count < space ? count : (size_t)space;
    size_t at = (size_t)(*written % capacity);
    size_t first = take < capacity - at ? take : (size_t)(capacity - at);
    memcpy(data + at, bytes, first);
    memcpy(data, bytes + first, take - first);
    *written += take;
    atomic_store_explicit(&header->written, *written, memory_order_seq_cst);
    return take;
}

/// Copies up to `count` published bytes from the reader's position `*read` into `bytes`; returns how many, or
/// -1 when the writer's position is impossible (behind the reader, or more than a ring ahead). Sets `*wake`
/// to 1 when the writer waits for room: the caller then wakes it.
static inline long fw_ring_read(void *ring, uint64_t capacity, uint64_t *read, uint8_t *bytes, size_t count,
                                int *wake) {
    fw_ring_header *header = (fw_ring_header *)ring;
    const uint8_t *data = (const uint8_t *)ring + FW_RING_HEADER;
    *wake = 0;
    uint64_t written = atomic_load_explicit(&header->written, memory_order_acquire);
    if (written < *read || written - *read > capacity) return -1;
    uint64_t ready = written - *read;
    size_t take = count < ready ? count : (size_t)ready;
    if (take == 0) return 0;
    size_t at = (size_t)(*read % capacity);
    size_t first = take < capacity - at ? take : (size_t)(capacity - at);
    memcpy(bytes, data + at, first);
    memcpy(bytes + first, data, take - first);
    *read += take;
    atomic_store_explicit(&header->read, *read, memory_order_seq_cst);
    *wake = atomic_load_explicit(&header->writer_waits, memory_order_seq_cst) != 0 &&
            atomic_exchange_explicit(&header->writer_waits, 0, memory_order_seq_cst) != 0;
    return (long)take;
}

/// Returns 1 when the reader sleeps, or is about to, and must be woken (once: the flag is cleared).
static inline int fw_ring_wake_reader(void *ring) {
    fw_ring_header *header = (fw_ring_header *)ring;
    return atomic_load_explicit(&header->reader_sleeps, memory_order_seq_cst) != 0 &&
           atomic_exchange_explicit(&header->reader_sleeps, 0, memory_order_seq_cst) != 0;
}

/// The reader is about to sleep until bytes come: says so, then looks once more. Returns 1 when bytes came
/// meanwhile (the reader then stays awake), 0 when it may sleep.
static inline int fw_ring_reader_sleeps(void *ring, uint64_t read) {
    fw_ring_header *header = (fw_ring_header *)ring;
    atomic_store_explicit(&header->reader_sleeps, 1, memory_order_seq_cst);
    return atomic_load_explicit(&header->written, memory_order_seq_cst) != read;
}

/// The writer is about to sleep until room frees: says so, then looks once more. Returns 1 when room freed
/// meanwhile (the writer then stays awake), 0 when it may sleep.
static inline int fw_ring_writer_waits(void *ring, uint64_t capacity, uint64_t written) {
    fw_ring_header *header = (fw_ring_header *)ring;
    atomic_store_explicit(&header->writer_waits, 1, memory_order_seq_cst);
    return written - atomic_load_explicit(&header->read, memory_order_seq_cst) < capacity;
}

/// The reader is awake again: the writer need not wake it.
static inline void fw_ring_reader_awake(void *ring) {
    atomic_store_explicit(&((fw_ring_header *)ring)->reader_sleeps, 0, memory_order_seq_cst);
}

/// The writer is awake again: the reader need not wake it.
static inline void fw_ring_writer_awake(void *ring) {
    atomic_store_explicit(&((fw_ring_header *)ring)->writer_waits, 0, memory_order_seq_cst);
}

#endif

/* Fairway's own statements in C, no engine, no threads: what the store thread's SQL costs alone, for
 * comparing with raw-sqlite-drain.c (the reference) and with Fairway itself.
 * Each transaction deletes the jobs claimed by the previous one, in the order a fair scheduler runs them
 * (one of each queue in turn), then claims up to BATCH ready jobs from each queue in turn with Fairway's
 * claim statement (lease owner, expiry and the eight columns it reads). Prints "done N".
 *   cc -O2 -o fair-sqlite-drain fair-sqlite-drain.c -lsqlite3
 *   fair-sqlite-drain FILE PREFIX COUNT [BATCH [OWNER]]   (queues PREFIX0 … PREFIX<COUNT-1>; BATCH 29,
 *   the mean claim of a 120-queue drain; OWNER 12 characters, as long as Fairway's; FAIR_PRAGMA as below) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s FILE PREFIX COUNT [BATCH [OWNER]]\n", argv[0]); return 2; }
    int count = atoi(argv[3]);
    int batch = argc > 4 ? atoi(argv[4]) : 29;
    const char *owner = argc > 5 ? argv[5] : "k3x7q2m9w4ab";
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) { fprintf(stderr, "open: %s\n", sqlite3_errmsg(db)); return 1; }
    sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000", 0, 0, 0);
    /* FAIR_PRAGMA: more settings to compare, e.g. "PRAGMA cache_size = -16384" (Fairway's page cache). */
    if (getenv("FAIR_PRAGMA")) sqlite3_exec(db, getenv("FAIR_PRAGMA"), 0, 0, 0);
    sqlite3_stmt *claim, *ack;
    if (sqlite3_prepare_v2(db,
            "UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?2, lease_expires_at = ?3 "
            "WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?4) "
            "RETURNING id, type, payload, attempts, enqueued_at, priority, last_error, fairness_key",
            -1, &claim, 0) != SQLITE_OK
        || sqlite3_prepare_v2(db, "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2 AND state = 2", -1, &ack, 0)
            != SQLITE_OK) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    size_t capacity = (size_t)count * batch;
    sqlite3_int64 *held = malloc(sizeof *held * capacity), *order = malloc(sizeof *order * capacity);
    int *claimed = calloc(count, sizeof *claimed);
    size_t nheld = 0;
    long done = 0;
    char name[512];
    for (;;) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
        /* Settle what the last transaction claimed, one job of each queue in turn. */
        size_t k = 0;
        for (int j = 0; j < batch; j++)
            for (int q = 0, at = 0; q < count; at += claimed[q], q++)
                if (j < claimed[q]) order[k++] = held[at + j];
        for (size_t i = 0; i < k; i++) {
            sqlite3_bind_int64(ack, 1, order[i]);
            sqlite3_bind_text(ack, 2, owner, -1, SQLITE_STATIC);
            sqlite3_step(ack);
            sqlite3_reset(ack);
        }
        done += (long)k;
        nheld = 0;
        sqlite3_int64 expires = (sqlite3_int64)time(0) * 1000 + 30000;
        for (int q = 0; q < count; q++) {
            snprintf(name, sizeof name, "%s%d", argv[2], q);
            sqlite3_bind_text(claim, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(claim, 2, owner, -1, SQLITE_STATIC);
            sqlite3_bind_int64(claim, 3, expires);
            sqlite3_bind_int(claim, 4, batch);
            claimed[q] = 0;
            while (sqlite3_step(claim) == SQLITE_ROW) {
                held[nheld++] = sqlite3_column_int64(claim, 0);
                (void)sqlite3_column_blob(claim, 2);
                (void)sqlite3_column_text(claim, 1);
                claimed[q]++;
            }
            sqlite3_reset(claim);
        }
        sqlite3_exec(db, "COMMIT", 0, 0, 0);
        if (nheld == 0) break;
    }
    printf("done %ld\n", done);
    sqlite3_finalize(claim);
    sqlite3_finalize(ack);
    sqlite3_close(db);
    return 0;
}

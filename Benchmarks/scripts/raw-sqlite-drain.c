/* The raw reference for draining a Fairway queue file from process start: the SQLite C API alone, no
 * engine, no threads. Queue by queue in turn, claim up to 64 ready jobs in one transaction (as Fairway's
 * claim does), delete them in another, until every queue is empty. Prints "first" when the first batch
 * is claimed and "done N" at the end. OR IGNORE as in Fairway's claim: without it SQLite journals every page a
 * claim changes, to a temporary file once past 64 KiB (a backlog whose queues are interleaved in the file).
 *   cc -O2 -o raw-sqlite-drain raw-sqlite-drain.c -lsqlite3
 *   raw-sqlite-drain FILE PREFIX COUNT        (queues PREFIX0 … PREFIX<COUNT-1>) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s FILE PREFIX COUNT\n", argv[0]); return 2; }
    int count = atoi(argv[3]);
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) { fprintf(stderr, "open: %s\n", sqlite3_errmsg(db)); return 1; }
    sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000", 0, 0, 0);
    sqlite3_stmt *claim, *delete;
    if (sqlite3_prepare_v2(db,
            "UPDATE OR IGNORE jobs SET state = 2, lease_owner = 'raw', lease_expires_at = 0, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT 64) "
            "RETURNING id, type, payload", -1, &claim, 0) != SQLITE_OK
        || sqlite3_prepare_v2(db, "DELETE FROM jobs WHERE id = ?1", -1, &delete, 0) != SQLITE_OK) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_int64 ids[64];
    long done = 0;
    int empty = 0, queue = 0, first = 1;
    char name[512];
    while (empty < count) {
        int n = 0;
        snprintf(name, sizeof name, "%s%d", argv[2], queue);
        sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
        sqlite3_bind_text(claim, 1, name, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(claim) == SQLITE_ROW && n < 64) {
            ids[n++] = sqlite3_column_int64(claim, 0);
            (void)sqlite3_column_blob(claim, 2);
        }
        sqlite3_reset(claim);
        sqlite3_exec(db, "COMMIT", 0, 0, 0);
        queue = (queue + 1) % count;
        if (n == 0) { empty++; continue; }
        if (first) { printf("first\n"); fflush(stdout); first = 0; }
        empty = 0;
        sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
        for (int i = 0; i < n; i++) {
            sqlite3_bind_int64(delete, 1, ids[i]);
            sqlite3_step(delete);
            sqlite3_reset(delete);
        }
        sqlite3_exec(db, "COMMIT", 0, 0, 0);
        done += n;
    }
    printf("done %ld\n", done);
    sqlite3_finalize(claim);
    sqlite3_finalize(delete);
    sqlite3_close(db);
    return 0;
}

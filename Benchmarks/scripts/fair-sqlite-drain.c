/* Fairway's own statements in C, no engine, no threads: what the store thread's SQL costs alone, for
 * comparing with raw-sqlite-drain.c (the reference) and with Fairway itself.
 * Each transaction deletes the jobs claimed by the previous one, then claims up to BATCH ready jobs from
 * each queue in turn, as Fairway's store thread does (sources/FairwaySQLite: CompletedJobs, ReadyJobClaim):
 *   claim:  SELECT the first ready jobs of the queue (the eight columns Fairway reads), then lease them one
 *           UPDATE per run of consecutive ids, or one IN-subquery UPDATE when runs are over a quarter of them;
 *   delete: completed ids sorted into runs of consecutive ids; a run of two or more is counted (still ours?)
 *           and deleted by id range; single ids one DELETE each.
 * FAIR_PER_JOB=1 runs the statements Fairway used before (2026-12-05): one UPDATE ... RETURNING per claim,
 * one DELETE per job, jobs deleted in the order a fair scheduler runs them (one of each queue in turn).
 * Prints "done N".
 *   cc -O2 -o fair-sqlite-drain fair-sqlite-drain.c -lsqlite3
 *   fair-sqlite-drain FILE PREFIX COUNT [BATCH [OWNER]]   (queues PREFIX0 … PREFIX<COUNT-1>; BATCH 29,
 *   the mean claim of a 120-queue drain; OWNER 12 characters, as long as Fairway's; FAIR_PRAGMA as below) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sqlite3 *db;

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *statement;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, 0) != SQLITE_OK) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    return statement;
}

static int by_id(const void *a, const void *b) {
    sqlite3_int64 x = *(const sqlite3_int64 *)a, y = *(const sqlite3_int64 *)b;
    return x < y ? -1 : x > y;
}

/* The end of the run of consecutive ids that starts at ids[i]. */
static size_t run_end(const sqlite3_int64 *ids, size_t i, size_t n) {
    while (i + 1 < n && ids[i + 1] == ids[i] + 1) i++;
    return i;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s FILE PREFIX COUNT [BATCH [OWNER]]\n", argv[0]); return 2; }
    int count = atoi(argv[3]);
    int batch = argc > 4 ? atoi(argv[4]) : 29;
    const char *owner = argc > 5 ? argv[5] : "k3x7q2m9w4ab";
    int per_job = getenv("FAIR_PER_JOB") != 0;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) { fprintf(stderr, "open: %s\n", sqlite3_errmsg(db)); return 1; }
    sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000", 0, 0, 0);
    /* FAIR_PRAGMA: more settings to compare, e.g. "PRAGMA cache_size = -16384" (Fairway's page cache). */
    if (getenv("FAIR_PRAGMA")) sqlite3_exec(db, getenv("FAIR_PRAGMA"), 0, 0, 0);
    sqlite3_stmt *returning = prepare(
        "UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?2, lease_expires_at = ?3 "
        "WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?4) "
        "RETURNING id, type, payload, attempts, enqueued_at, priority, last_error, fairness_key");
    sqlite3_stmt *select = prepare(
        "SELECT id, type, payload, attempts, enqueued_at, priority, last_error, fairness_key FROM jobs "
        "WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?2");
    sqlite3_stmt *lease_ids = prepare(
        "UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?3, lease_expires_at = ?4 "
        "WHERE id BETWEEN ?1 AND ?2 AND +state = 0");
    sqlite3_stmt *lease_first = prepare(
        "UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?3, lease_expires_at = ?4 "
        "WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?2)");
    sqlite3_stmt *delete_one = prepare("DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?3 AND state = 2");
    sqlite3_stmt *count_range = prepare(
        "SELECT count(*) FROM jobs WHERE id BETWEEN ?1 AND ?2 AND +lease_owner = ?3 AND +state = 2");
    sqlite3_stmt *delete_range = prepare(
        "DELETE FROM jobs WHERE id BETWEEN ?1 AND ?2 AND +lease_owner = ?3 AND +state = 2");
    sqlite3_stmt *owned[] = {lease_ids, lease_first, delete_one, count_range, delete_range};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) sqlite3_bind_text(owned[i], 3, owner, -1, SQLITE_STATIC);
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
        if (!per_job) qsort(order, k, sizeof *order, by_id);
        for (size_t i = 0; i < k;) {
            size_t end = per_job ? i : run_end(order, i, k);
            if (end > i) {
                sqlite3_bind_int64(count_range, 1, order[i]);
                sqlite3_bind_int64(count_range, 2, order[end]);
                sqlite3_step(count_range);
                sqlite3_int64 ours = sqlite3_column_int64(count_range, 0);
                sqlite3_reset(count_range);
                if (ours == (sqlite3_int64)(end - i + 1)) {
                    sqlite3_bind_int64(delete_range, 1, order[i]);
                    sqlite3_bind_int64(delete_range, 2, order[end]);
                    sqlite3_step(delete_range);
                    sqlite3_reset(delete_range);
                    i = end + 1;
                    continue;
                }
            }
            for (; i <= end; i++) {
                sqlite3_bind_int64(delete_one, 1, order[i]);
                sqlite3_step(delete_one);
                sqlite3_reset(delete_one);
            }
        }
        done += (long)k;
        nheld = 0;
        sqlite3_int64 expires = (sqlite3_int64)time(0) * 1000 + 30000;
        for (int q = 0; q < count; q++) {
            snprintf(name, sizeof name, "%s%d", argv[2], q);
            sqlite3_stmt *read = per_job ? returning : select;
            sqlite3_bind_text(read, 1, name, -1, SQLITE_TRANSIENT);
            if (per_job) {
                sqlite3_bind_text(read, 2, owner, -1, SQLITE_STATIC);
                sqlite3_bind_int64(read, 3, expires);
                sqlite3_bind_int(read, 4, batch);
            } else {
                sqlite3_bind_int(read, 2, batch);
            }
            size_t first = nheld, runs = 0;
            while (sqlite3_step(read) == SQLITE_ROW) {
                held[nheld] = sqlite3_column_int64(read, 0);
                if (nheld == first || held[nheld] != held[nheld - 1] + 1) runs++;
                nheld++;
                for (int c = 1; c < 8; c++) (void)sqlite3_column_blob(read, c);
            }
            sqlite3_reset(read);
            claimed[q] = (int)(nheld - first);
            if (per_job || nheld == first) continue;
            if (runs * 4 > nheld - first) {
                sqlite3_bind_text(lease_first, 1, name, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(lease_first, 2, claimed[q]);
                sqlite3_bind_int64(lease_first, 4, expires);
                sqlite3_step(lease_first);
                sqlite3_reset(lease_first);
            } else {
                for (size_t i = first; i < nheld; i++) {
                    size_t end = run_end(held, i, nheld);
                    sqlite3_bind_int64(lease_ids, 1, held[i]);
                    sqlite3_bind_int64(lease_ids, 2, held[end]);
                    sqlite3_bind_int64(lease_ids, 4, expires);
                    sqlite3_step(lease_ids);
                    sqlite3_reset(lease_ids);
                    i = end;
                }
            }
        }
        sqlite3_exec(db, "COMMIT", 0, 0, 0);
        if (nheld == 0) break;
    }
    printf("done %ld\n", done);
    sqlite3_close_v2(db);
    return 0;
}

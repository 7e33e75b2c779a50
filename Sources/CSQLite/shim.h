#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro over a cast that Swift does not import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

// sqlite3_config is variadic, which Swift cannot call. Turns off allocation statistics, which SQLite keeps
// under a global mutex; refused (SQLITE_MISUSE) once SQLite is initialised.
static inline int csqlite_disable_memstatus(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

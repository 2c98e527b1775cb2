# PGXS build of the extension; the top-level Makefile calls this after it has
# built build/rel/libdrcore.a (the plain-C layers).
MODULE_big = dragonraft
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/bgworker/*.c)))
EXTENSION = dragonraft
DATA = $(sort $(wildcard sql/dragonraft--*.sql))
PG_CPPFLAGS = -Isrc -Ibuild/gen
PG_CFLAGS = -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers \
	$(if $(filter 1,$(WERROR)),-Werror)
SHLIB_LINK = build/rel/libdrcore.a -lrocksdb -luv -lprotobuf-c -lssl -lcrypto -lpthread -lm
EXTRA_CLEAN = build

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(shlib): build/rel/libdrcore.a

# PGXS tracks no header dependencies here: every object of the extension
# depends on the headers it may include, so a changed shared struct never
# leaves an object with the old layout.
$(OBJS): $(wildcard src/bgworker/*.h) $(wildcard src/*/*.h)

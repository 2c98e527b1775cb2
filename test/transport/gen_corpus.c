/*
 * gen_corpus.c - writes the committed seed corpora of the transport's fuzz
 * targets (test/fuzz/corpus/fuzz_frame and fuzz_batch).  Rebuild with:
 *   make BUILD_DIR=build/dev-transport build/dev-transport/lib/libdr_transport.a
 * build/dev-transport/lib/libdr_util.a
 *   cc -std=gnu11 -Isrc -Ibuild/gen test/transport/gen_corpus.c \
 *      build/dev-transport/lib/libdr_transport.a build/dev-transport/lib/libdr_util.a -lprotobuf-c
 * -lcrypto -luv -o /tmp/gen_corpus /tmp/gen_corpus test/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/auth.h"
#include "transport/codec.h"
#include "transport/frame.h"

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

/* Appends a frame to out (two leading control bytes for fuzz_frame are added by the caller). */
static void add_frame(struct transport_buf *out, uint8_t kind, const void *p, uint32_t len)
{
	transport_buf_reserve(out, TRANSPORT_FRAME_HDR + len);
	transport_frame_header_put(out->p + out->len, kind, p, len);
	memcpy(out->p + out->len + TRANSPORT_FRAME_HDR, p, len);
	out->len += TRANSPORT_FRAME_HDR + len;
}

int main(int argc, char **argv)
{
	char fdir[400], bdir[400];
	struct transport_encoder enc = {0};
	struct transport_buf batch = {0}, frames = {0};
	struct raft_entry ents[2];
	struct raft_snapshot_meta snap = {.index = 40, .term = 3};
	struct raft_message m;
	uint8_t data[2][24];
	char name[64];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	snprintf(fdir, sizeof(fdir), "%s/fuzz_frame", argv[1]);
	snprintf(bdir, sizeof(bdir), "%s/fuzz_batch", argv[1]);
	memset(data, 'd', sizeof(data));
	snap.membership.n_voters = 3;
	snap.membership.voters[0] = 1;
	snap.membership.voters[1] = 2;
	snap.membership.voters[2] = 3;
	snap.membership.n_nonvoters = 1;
	snap.membership.nonvoters[0] = 4;
	snap.membership.n_removed = 1;
	snap.membership.removed[0] = 5;
	for (uint32_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
		struct transport_buf one = {0};

		memset(&m, 0, sizeof(m));
		m.type = t;
		m.group_id = 100 + t;
		m.from = 1;
		m.to = 2;
		m.term = 3;
		m.log_term = 2;
		m.index = 9;
		m.commit = 8;
		m.context = t;
		if (t == RAFT_MSG_APPEND || t == RAFT_MSG_PROPOSE) {
			ents[0] = (struct raft_entry){
			        .term = 3, .index = 10, .len = 24, .data = data[0]};
			ents[1] = (struct raft_entry){
			        .term = 3, .index = 11, .type = 1, .len = 12, .data = data[1]};
			m.n_entries = 2;
			m.entries = ents;
		}
		if (t == RAFT_MSG_SNAPSHOT)
			m.snapshot = &snap;
		transport_encode_message(&enc, &m, &one);
		transport_encode_message(&enc, &m, &batch);
		snprintf(name, sizeof(name), "msg-type-%02u", t);
		write_file(bdir, name, one.p, one.len);
		transport_buf_free(&one);
	}
	write_file(bdir, "batch-all-types", batch.p, batch.len);
	{
		struct transport_snapshot_header sh = {.group_id = 9,
		                                       .from = 1,
		                                       .to = 2,
		                                       .meta = snap,
		                                       .total_size = 1 << 20,
		                                       .crc32c = 0xabcdef01};
		struct raft_hard_state hs = {.term = 4, .vote = 2, .commit = 30};
		struct transport_buf b = {0};

		transport_encode_snapshot_header(&sh, &b);
		write_file(bdir, "snapshot-header", b.p, b.len);
		b.len = 0;
		transport_encode_hard_state(&hs, &b);
		write_file(bdir, "hard-state", b.p, b.len);
		transport_buf_free(&b);
	}
	/* Frame streams: 2 control bytes (read size, max payload / 256), then frames. */
	{
		struct transport_hello h = {.client_id = 1, .server_id = 2, .purpose = 1};
		uint8_t hello[TRANSPORT_HELLO_LEN], chunk[300];

		transport_hello_put(hello, &h);
		memset(chunk, 'c', sizeof(chunk));
		transport_buf_reserve(&frames, 2);
		frames.p[0] = 5;
		frames.p[1] = 0xff;
		frames.len = 2;
		add_frame(&frames, TF_HELLO, hello, sizeof(hello));
		write_file(fdir, "hello", frames.p, frames.len);
		add_frame(&frames, TF_WELCOME, hello, TRANSPORT_WELCOME_LEN);
		add_frame(&frames, TF_BATCH, batch.p, (uint32_t)batch.len);
		write_file(fdir, "hello-batch", frames.p, frames.len);
		add_frame(&frames, TF_SNAP_CHUNK, chunk, sizeof(chunk));
		add_frame(&frames, TF_SNAP_END, NULL, 0);
		frames.p[0] = 63;
		write_file(fdir, "stream", frames.p, frames.len);
		frames.p[0] = 0x80 | 7; /* as inside TLS: CRCs not checked */
		write_file(fdir, "stream-no-crc", frames.p, frames.len);
		frames.p[0] = 0;
		frames.p[1] = 1; /* limit 256: the batch is oversize */
		write_file(fdir, "stream-small-limit", frames.p, frames.len);
	}
	transport_buf_free(&frames);
	transport_buf_free(&batch);
	transport_encoder_free(&enc);
	return 0;
}

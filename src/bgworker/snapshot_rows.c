/*
 * snapshot_rows.c - a table's rows in a full snapshot (DESIGN §9; the format
 * in snapshot.h) in their on-disk form: both ends run the same PostgreSQL
 * major version on the same platform (the file's header says which, and a
 * node that differs refuses it), so the values of built-in types that hold
 * no OID of a local object travel as the tuples hold them, and the load
 * forms tuples from them without a receive function, inserting them in
 * batches (table_multi_insert, as COPY FROM does, frozen when the table was
 * made or truncated by the load) and building the indexes once after them.
 * Other columns travel in their send function's form and are read by their
 * receive function, as binary COPY does.
 *
 * Values that are stored compressed travel compressed (an out-of-line value
 * is fetched, not decompressed): the exporter does not decompress them and
 * the load does not compress them again.
 *
 * Every length is checked against the bytes that are there before anything
 * is read: a file that lies (its checksum catches what is not made on
 * purpose) gives a corrupt-file error, never a read past the buffer.  The
 * inside of a value (a numeric's digits, a jsonb's offsets) is not checked,
 * as it is not in a table's own pages.
 */
#include "snapshot.h"
#include "write.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/toast_compression.h"
#include "catalog/catversion.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* The exporter closes a chunk of rows once it holds this many bytes. */
#define CHUNK_BYTES 65536

bool dr_snapshot_raw_type(Oid type)
{
	HeapTuple tup;
	Form_pg_type t;
	bool raw;

	if (type >= FirstGenbkiObjectId)
		return false; /* made here: its values may name local objects */
	if (dr_type_is_local_oid(type))
		return false;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tup))
		return false;
	t = (Form_pg_type)GETSTRUCT(tup);
	/* base types (not enums, composites, domains, ranges, pseudo-types); an array's
	 * header names its element type, a built-in one */
	raw = t->typtype == TYPTYPE_BASE && t->typlen != -2 &&
	      (t->typlen != -1 || !OidIsValid(t->typelem) || dr_snapshot_raw_type(t->typelem));
	ReleaseSysCache(tup);
	return raw;
}

bool dr_snapshot_rows_raw(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return constr == NULL || !constr->has_generated_stored;
}

void dr_snapshot_platform(uint8 out[DR_SNAP_HEADER_BYTES - 32])
{
	uint32 major = PG_VERSION_NUM / 100, cat = CATALOG_VERSION_NO,
	       enc = (uint32)GetDatabaseEncoding();

	for (int i = 0; i < 4; i++) {
		out[i] = (uint8)(major >> (8 * i));
		out[4 + i] = (uint8)(cat >> (8 * i));
		out[12 + i] = (uint8)(enc >> (8 * i));
	}
	out[8] = MAXIMUM_ALIGNOF;
	out[9] = FLOAT8PASSBYVAL;
#ifdef WORDS_BIGENDIAN
	out[10] = 1;
#else
	out[10] = 0;
#endif
	out[11] = SIZEOF_DATUM;
}

static void put32(StringInfo buf, uint32 v)
{
	for (int i = 0; i < 4; i++)
		appendStringInfoCharMacro(buf, (char)(v >> (8 * i)));
}

static void set32(char *p, uint32 v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (8 * i));
}

static uint32 get32(const char *p)
{
	const uint8 *b = (const uint8 *)p;

	return (uint32)b[0] | (uint32)b[1] << 8 | (uint32)b[2] << 16 | (uint32)b[3] << 24;
}

/* One column of the rows: the tuple's attribute and how its values travel. */
typedef struct Col {
	int att;   /* index in the tuple descriptor */
	char form; /* DR_SNAP_COL_RAW or DR_SNAP_COL_SEND */
	int16 len; /* typlen */
	bool byval;
	char align;
	FmgrInfo fn; /* send or receive */
	Oid ioparam;
	int32 typmod;
} Col;

void dr_snapshot_rows_write(Relation rel, StringInfo buf, void (*flush)(StringInfo))
{
	TupleDesc desc = RelationGetDescr(rel);
	Col *cols = palloc0(sizeof(Col) * Max(desc->natts, 1));
	int n = 0, nb;
	MemoryContext row_cxt, old;
	TableScanDesc scan;
	TupleTableSlot *slot;
	int chunk = -1; /* where the open chunk starts in buf */
	uint32 rows = 0;

	appendBinaryStringInfo(buf, DR_SNAP_RAW_MAGIC, 8);
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Col *c = &cols[n];

		if (a->attisdropped)
			continue;
		c->att = i;
		c->len = a->attlen;
		c->byval = a->attbyval;
		c->form = dr_snapshot_raw_type(a->atttypid) ? DR_SNAP_COL_RAW : DR_SNAP_COL_SEND;
		if (c->form == DR_SNAP_COL_SEND) {
			Oid func;
			bool varlena;

			getTypeBinaryOutputInfo(a->atttypid, &func, &varlena);
			fmgr_info(func, &c->fn);
		}
		n++;
	}
	put32(buf, (uint32)n);
	for (int k = 0; k < n; k++) {
		Form_pg_attribute a = TupleDescAttr(desc, cols[k].att);

		appendStringInfoCharMacro(buf, cols[k].form);
		put32(buf, a->atttypid);
		put32(buf, (uint32)a->atttypmod);
		appendBinaryStringInfo(buf, NameStr(a->attname), strlen(NameStr(a->attname)) + 1);
	}
	nb = (n + 7) / 8;
	row_cxt =
	        AllocSetContextCreate(CurrentMemoryContext, "snapshot row", ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	slot = table_slot_create(rel, NULL);
	for (;;) {
		bool more = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		int bitmap;

		if (chunk >= 0 &&
		    (!more || rows == DR_SNAP_CHUNK_ROWS || buf->len - chunk >= CHUNK_BYTES)) {
			set32(buf->data + chunk, (uint32)(buf->len - chunk - 8));
			set32(buf->data + chunk + 4, rows);
			chunk = -1;
			if (buf->len >= CHUNK_BYTES) {
				flush(buf);
				CHECK_FOR_INTERRUPTS();
			}
		}
		if (!more)
			break;
		if (chunk < 0) {
			chunk = buf->len;
			rows = 0;
			put32(buf, 0);
			put32(buf, 0);
		}
		slot_getallattrs(slot);
		old = MemoryContextSwitchTo(row_cxt);
		bitmap = buf->len;
		appendStringInfoSpaces(buf, nb);
		memset(buf->data + bitmap, 0, nb);
		for (int k = 0; k < n; k++) {
			const Col *c = &cols[k];
			Datum d = slot->tts_values[c->att];

			if (slot->tts_isnull[c->att])
				buf->data[bitmap + k / 8] |= (char)(1 << (k % 8));
			else if (c->form == DR_SNAP_COL_SEND) {
				bytea *b = SendFunctionCall((FmgrInfo *)&c->fn, d);

				put32(buf, (uint32)(VARSIZE(b) - VARHDRSZ));
				appendBinaryStringInfo(buf, VARDATA(b), VARSIZE(b) - VARHDRSZ);
			} else if (c->byval) {
				Datum v; /* (aligned for store_att_byval) */

				store_att_byval(&v, d, c->len);
				appendBinaryStringInfo(buf, (char *)&v, c->len);
			} else if (c->len > 0)
				appendBinaryStringInfo(buf, DatumGetPointer(d), c->len);
			else {
				struct varlena *v = (struct varlena *)DatumGetPointer(d);

				/* fetched as it is stored out of line: compressed or not */
				if (VARATT_IS_EXTERNAL(v))
					v = detoast_external_attr(v);
				appendBinaryStringInfo(buf, (char *)v, VARSIZE_ANY(v));
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		rows++;
	}
	put32(buf, 0); /* the end */
	put32(buf, 0);
	flush(buf);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	MemoryContextDelete(row_cxt);
	pfree(cols);
}

/* The reader's state: what is left of the section, and how to report a bad one. */
static struct {
	uint64 left;
	void (*get)(void *, size_t);
	void (*corrupt)(const char *) pg_attribute_noreturn();
} R;

static void take(void *p, size_t n)
{
	if (n > R.left)
		R.corrupt("a table's rows run past their section");
	R.get(p, n);
	R.left -= n;
}

/* The columns of the section's header, matched by name to rel's (all of them). */
static Col *read_columns(Relation rel, int *ncols)
{
	TupleDesc desc = RelationGetDescr(rel);
	bool *seen = palloc0(sizeof(bool) * Max(desc->natts, 1));
	char b[4];
	Col *cols;
	int n;

	take(b, 4);
	n = (int)get32(b);
	if (n < 0 || n > desc->natts)
		R.corrupt("a table's rows have more columns than the table");
	cols = palloc0(sizeof(Col) * Max(n, 1));
	for (int k = 0; k < n; k++) {
		char h[9], name[NAMEDATALEN];
		Oid type;
		int32 typmod;
		int i, len = 0;
		Form_pg_attribute a = NULL;

		take(h, 9);
		type = get32(h + 1);
		typmod = (int32)get32(h + 5);
		do {
			if (len == NAMEDATALEN)
				R.corrupt("a column's name is too long");
			take(&name[len], 1);
		} while (name[len++] != '\0');
		for (i = 0; i < desc->natts; i++) {
			a = TupleDescAttr(desc, i);
			if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
				break;
		}
		if (i == desc->natts || seen[i] || a->attgenerated)
			ereport(ERROR,
			        (errcode(ERRCODE_DATA_CORRUPTED),
			         errmsg("the snapshot's rows of table \"%s\" have a column \"%s\" "
			                "that it lacks here, or twice",
			                RelationGetRelationName(rel), name)));
		seen[i] = true;
		cols[k].att = i;
		cols[k].form = h[0];
		cols[k].len = a->attlen;
		cols[k].byval = a->attbyval;
		cols[k].align = a->attalign;
		cols[k].typmod = a->atttypmod;
		if (h[0] == DR_SNAP_COL_RAW) {
			if (type != a->atttypid || typmod != a->atttypmod ||
			    !dr_snapshot_raw_type(type))
				ereport(ERROR,
				        (errcode(ERRCODE_DATA_CORRUPTED),
				         errmsg("column \"%s\" of table \"%s\" has type %s here, "
				                "not the snapshot's (type %u, modifier %d)",
				                name, RelationGetRelationName(rel),
				                format_type_with_typemod(a->atttypid, a->atttypmod),
				                type, typmod)));
		} else if (h[0] == DR_SNAP_COL_SEND) {
			Oid func;

			getTypeBinaryInputInfo(a->atttypid, &func, &cols[k].ioparam);
			fmgr_info(func, &cols[k].fn);
		} else
			R.corrupt("a column's form is unknown");
	}
	for (int i = 0; i < desc->natts; i++)
		if (!seen[i] && !TupleDescAttr(desc, i)->attisdropped)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
			                errmsg("the snapshot's rows of table \"%s\" lack its "
			                       "column \"%s\"",
			                       RelationGetRelationName(rel),
			                       NameStr(TupleDescAttr(desc, i)->attname))));
	pfree(seen);
	*ncols = n;
	return cols;
}

/* A compressed value's method must be one this server reads (lz4 is optional). */
static void compression(const char *v)
{
	varattrib_4b h;

	memcpy(&h, v, VARHDRSZ_COMPRESSED);
	switch (VARDATA_COMPRESSED_GET_COMPRESS_METHOD(&h)) {
	case TOAST_PGLZ_COMPRESSION_ID:
		return;
	case TOAST_LZ4_COMPRESSION_ID:
#ifdef USE_LZ4
		return;
#else
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("a snapshot's value is compressed with lz4, which this server "
		                "was built without")));
#endif
	default:
		R.corrupt("a value's compression method is unknown");
	}
}

/*
 * One value of c at *p (before end) into *d: checked lengths; a datum that
 * must be aligned and is not is copied (into the current memory context).
 */
static void read_value(const Col *c, const char **p, const char *end, Datum *d, StringInfo attr)
{
	const char *v = *p;
	size_t size;

	if (c->form == DR_SNAP_COL_SEND) {
		if (end - v < 4 || get32(v) > (uint64)(end - v - 4))
			R.corrupt("a value runs past its rows");
		size = get32(v);
		resetStringInfo(attr);
		appendBinaryStringInfo(attr, v + 4, (int)size);
		*d = ReceiveFunctionCall((FmgrInfo *)&c->fn, attr, c->ioparam, c->typmod);
		if (attr->cursor != attr->len)
			ereport(ERROR,
			        (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			         errmsg("incorrect binary data format in a snapshot's value")));
		*p = v + 4 + size;
		return;
	}
	if (c->len > 0)
		size = c->len;
	else if (v == end)
		size = 1; /* (past the end, below) */
	else if (VARATT_IS_1B_E(v))
		R.corrupt("a value is an external pointer");
	else if (VARATT_IS_1B(v))
		size = VARSIZE_1B(v);
	else if (end - v < VARHDRSZ)
		size = VARHDRSZ;
	else {
		uint32 h;

		memcpy(&h, v, sizeof(h));
		size = VARSIZE_4B(&h);
		if (size < (VARATT_IS_4B_C(&h) ? VARHDRSZ_COMPRESSED : VARHDRSZ))
			R.corrupt("a value's length is too short");
	}
	if (size > (size_t)(end - v))
		R.corrupt("a value runs past its rows");
	if (c->len == -1 && VARATT_IS_4B_C(v))
		compression(v);
	*p = v + size;
	if (c->byval) {
		Datum u; /* (aligned for fetch_att) */

		memcpy(&u, v, size);
		*d = fetch_att(&u, true, c->len);
	} else {
		/* a 1-byte header needs no alignment; the others their type's */
		if (!(c->len == -1 && VARATT_IS_1B(v)) &&
		    (uintptr_t)v != att_align_nominal((uintptr_t)v, c->align)) {
			char *copy = palloc(size);

			memcpy(copy, v, size);
			v = copy;
		}
		*d = PointerGetDatum(v);
	}
}

void dr_snapshot_rows_read(Relation rel, uint64 len, void (*get)(void *, size_t),
                           void (*corrupt)(const char *) pg_attribute_noreturn())
{
	TupleDesc desc = RelationGetDescr(rel);
	Col *cols;
	int n, nb, options = 0;
	TupleTableSlot *slots[DR_SNAP_CHUNK_ROWS] = {0};
	BulkInsertState bistate = GetBulkInsertState();
	CommandId cid = GetCurrentCommandId(true);
	EState *estate = NULL;
	ResultRelInfo *rri = NULL;
	MemoryContext chunk_cxt, old;
	StringInfoData attr;
	char *buf = NULL;
	size_t buf_size = 0;

	R.left = len;
	R.get = get;
	R.corrupt = corrupt;
	cols = read_columns(rel, &n);
	nb = (n + 7) / 8;
	/* Made or truncated by this load, with no older snapshot of this transaction to
	 * see them: the rows go in frozen and all-visible, as with COPY FREEZE. */
	InvalidateCatalogSnapshot();
	if ((rel->rd_createSubid == GetCurrentSubTransactionId() ||
	     rel->rd_newRelfilenodeSubid == GetCurrentSubTransactionId()) &&
	    ThereAreNoPriorRegisteredSnapshots() && ThereAreNoReadyPortals())
		options |= TABLE_INSERT_FROZEN;
	if (desc->constr != NULL && (desc->constr->has_not_null || desc->constr->num_check > 0)) {
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relid = RelationGetRelid(rel);
		rte->relkind = rel->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		estate = CreateExecutorState();
		ExecInitRangeTable(estate, list_make1(rte));
		rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, rel, 1, NULL, 0);
	}
	initStringInfo(&attr);
	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "snapshot rows",
	                                  ALLOCSET_DEFAULT_SIZES);
	for (;;) {
		char h[8];
		uint32 bytes, rows;
		const char *p, *end;

		take(h, 8);
		bytes = get32(h);
		rows = get32(h + 4);
		if (rows == 0) {
			if (bytes != 0)
				corrupt("a table's rows have a chunk of bytes but no rows");
			break;
		}
		if (rows > DR_SNAP_CHUNK_ROWS || bytes > R.left)
			corrupt("a chunk of a table's rows is too long");
		if (bytes > buf_size) {
			buf_size = Max(bytes, 2 * CHUNK_BYTES);
			buf = buf == NULL ? MemoryContextAllocHuge(CurrentMemoryContext, buf_size)
			                  : repalloc_huge(buf, buf_size);
		}
		take(buf, bytes);
		p = buf;
		end = buf + bytes;
		old = MemoryContextSwitchTo(chunk_cxt);
		for (uint32 r = 0; r < rows; r++) {
			TupleTableSlot *slot = slots[r];
			const char *bitmap = p;

			if (slot == NULL) {
				MemoryContextSwitchTo(old);
				slot = slots[r] = table_slot_create(rel, NULL);
				MemoryContextSwitchTo(chunk_cxt);
			}
			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
			if (end - p < nb)
				corrupt("a row runs past its chunk");
			p += nb;
			for (int k = 0; k < n; k++) {
				const Col *c = &cols[k];

				slot->tts_isnull[c->att] = (bitmap[k / 8] & (1 << (k % 8))) != 0;
				if (!slot->tts_isnull[c->att])
					read_value(c, &p, end, &slot->tts_values[c->att], &attr);
			}
			ExecStoreVirtualTuple(slot);
			if (estate != NULL)
				ExecConstraints(rri, slot, estate);
		}
		if (p != end)
			corrupt("a chunk of a table's rows holds more than its rows");
		table_multi_insert(rel, slots, (int)rows, cid, options, bistate);
		MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
		if (estate != NULL)
			ResetPerTupleExprContext(estate);
		CHECK_FOR_INTERRUPTS();
	}
	if (R.left != 0)
		corrupt("a table's rows end before their section");
	for (int i = 0; i < DR_SNAP_CHUNK_ROWS && slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, options);
	if (estate != NULL)
		FreeExecutorState(estate);
	MemoryContextDelete(chunk_cxt);
	if (buf != NULL)
		pfree(buf);
	pfree(attr.data);
	pfree(cols);
	/* No index entries were made: the table's indexes (a kept table's; a table the
	 * load makes gets them after its rows) are built now, unique ones checked. */
	if (RelationGetIndexList(rel) != NIL) {
		ReindexParams params = {0};

		CommandCounterIncrement();
		(void)reindex_relation(RelationGetRelid(rel), REINDEX_REL_CHECK_CONSTRAINTS,
		                       &params);
	}
}

# Review 43 (heterogeneous members and sessions): members compute a row's
# stored generated columns and check its CHECK constraints themselves, with
# their own settings, and PostgreSQL's IMMUTABLE float and bytea output
# functions read extra_float_digits and bytea_output.
#  1. A follower with extra_float_digits = 0, bytea_output = escape and
#     xmlbinary = hex in postgresql.conf stored other values in columns
#     GENERATED AS (x::text), (b::text) and (xmlelement(name e, b)) than the
#     leader, silently, and stopped applying at a
#     CHECK on such a text that the leader passed.
#  2. A leader's session with those settings did the same to every member;
#     it is refused now (with JDBC's extra_float_digits = 3 it is not).
#  3. execute() of ADD COLUMN ... GENERATED computed the leader's rows with
#     the session's bytea_output.
#  4. A commit that PostgreSQL fails after PRE_COMMIT (ON COMMIT DELETE ROWS
#     of a temporary table that another one references, 0A000) failed once
#     the change set was committed in the log: the client was told of a
#     failure, and every member had the row.
#  5. A leader's session with synchronous_commit = off whose transaction
#     also wrote a table that is not replicated: a crash lost its local
#     commit, and the log brought back its change set alone (half a
#     transaction: the local table's row was gone, the replicated one back).
#  6. A leader's session with a larger max_stack_depth stored a jsonb too
#     deep for the follower's (default) one to receive: its apply stopped.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
$c->create_group(1);
my $l = $c->leader(1);
my ($f) = grep { $_ != $l } $c->ids;
$c->node($f)->append_conf('postgresql.conf', "extra_float_digits = 0\nbytea_output = 'escape'\nxmlbinary = 'hex'\n");
$c->node($f)->restart;
# The node with the other settings must follow: restarted, it may have won
# an election meanwhile (a fresh CI run: node 1 restarted and led term 3,
# and the leader's own INSERT below, with its extra_float_digits = 0, was
# refused); then the leadership goes back.
if ($c->leader(1) == $f)
{
	$c->node($f)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $l)");
	$c->wait_until("node $l to lead again", sub { $c->leader(1) == $l });
}
# (no assertion of its own: the test numbers in README stay)
$c->leader(1) == $l or die "node $l does not lead group 1 again";
my $L = $c->node($l);

$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.g (id int PRIMARY KEY,
	x float8, b bytea, xt text GENERATED ALWAYS AS (x::text) STORED,
	bt text GENERATED ALWAYS AS (b::text) STORED,
	bx xml GENERATED ALWAYS AS (xmlelement(name e, b)) STORED)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.g', 1)");
# (a CHECK that 1/3 printed with 16 digits fails, and with 15 passes)
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.k (id int PRIMARY KEY,
	x float8 CHECK (length(x::text) < 18))$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.k', 1)");
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE DOMAIN public.short_f AS float8
	CHECK (length(VALUE::text) < 18); CREATE TABLE public.dm (id int PRIMARY KEY, x public.short_f)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.dm', 1)");

my $rows = q{SELECT string_agg(format('%s|%s|%s|%s', id, xt, bt, bx), ' ' ORDER BY id) FROM public.g};
sub same_rows
{
	my ($name) = @_;
	ok($c->caught_up(1), "$name: applied everywhere");
	my @r = map { $c->node($_)->safe_psql('postgres', $rows) } ($l, $f);
	diag "leader: $r[0]\nfollower: $r[1]";
	is($r[1], $r[0], "$name: the follower's generated columns are the leader's");
}

# 1. The follower's postgresql.conf.
$L->safe_psql('postgres', q{INSERT INTO public.g VALUES (1, 1.0/3, 'ab')});
same_rows('a follower with other settings');
$L->safe_psql('postgres', q{UPDATE public.g SET x = 2.0/3 WHERE id = 1});
same_rows('an update');

# 2. The leader's session: refused, nothing written anywhere.
my ($state, $msg) = $c->sql_error($l, q{SET extra_float_digits = 0;
	INSERT INTO public.g VALUES (2, 1.0/3, 'cd')});
is($state, '55000', 'a row computed with extra_float_digits = 0 is refused');
like($msg, qr/generated column "xt" of replicated table "g" depends on this session's settings/,
	'the error names the column');
($state, $msg) = $c->sql_error($l, q{SET bytea_output = 'escape';
	UPDATE public.g SET b = 'ef' WHERE id = 1});
is($state, '55000', 'an update computed with bytea_output = escape is refused');
like($msg, qr/generated column "bt"/, 'the error names that column');
($state, $msg) = $c->sql_error($l, q{SET xmlbinary = hex;
	INSERT INTO public.g VALUES (2, 0.5, 'cd')});
is($state, '55000', 'a row computed with xmlbinary = hex is refused');
like($msg, qr/generated column "bx"/, 'the error names that column');
($state, $msg) = $c->sql_error($l, q{SET extra_float_digits = 0;
	INSERT INTO public.k VALUES (1, 1.0/3)});
is($state, '23514', 'a row whose CHECK passes only with the session\'s settings is refused');
like($msg, qr/violates check constraint.*computed the new row of table "k" again/s,
	'the error says with what it was checked');
($state, $msg) = $c->sql_error($l, q{SET extra_float_digits = 0;
	INSERT INTO public.dm VALUES (1, 1.0/3)});
is($state, '23514', 'a value whose domain CHECK passes only with the session\'s settings is refused');
like($msg, qr/value for domain short_f violates check constraint/, 'the error names the domain');
$L->safe_psql('postgres', q{SET extra_float_digits = 0; INSERT INTO public.dm VALUES (2, 0.5)});
ok($c->caught_up(1), 'a value that passes with both is applied everywhere');
is(join(',', map { $c->node($_)->safe_psql('postgres', 'SELECT string_agg(id::text, \',\') FROM public.dm') } ($l, $f)),
	'2,2', 'and only that row is anywhere');
$L->safe_psql('postgres', q{SET extra_float_digits = 3;
	INSERT INTO public.g VALUES (3, 1.0/3, 'gh'); INSERT INTO public.k VALUES (3, 0.5)});
same_rows('a session with extra_float_digits = 3');
is(join(',', map { $c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM public.k') } ($l, $f)),
	'1,1', 'the follower applied the rows of k');

# 3. execute() of a rewrite that computes a generated column.
$L->safe_psql('postgres', q{SET bytea_output = 'escape';
	SELECT dragonraft.execute(1, $$ALTER TABLE public.g ADD COLUMN b2 text
	GENERATED ALWAYS AS (b::text || '/') STORED$$)});
ok($c->caught_up(1), 'the ADD COLUMN is applied everywhere');
my $q = q{SELECT string_agg(b2, ' ' ORDER BY id) FROM public.g};
my @r = map { $c->node($_)->safe_psql('postgres', $q) } ($l, $f);
diag "leader: $r[0]\nfollower: $r[1]";
is($r[0], '\x6162/ \x6768/', 'the leader computed the new column with bytea_output = hex');
is($r[1], $r[0], 'and so did the follower');

# 4. The session's temporary tables: refused before anything is proposed.
($state, $msg) = $c->sql_error($l, q{BEGIN; INSERT INTO public.k VALUES (4, 4);
	CREATE TEMP TABLE tp (id int PRIMARY KEY) ON COMMIT DELETE ROWS;
	CREATE TEMP TABLE tc (id int REFERENCES tp); COMMIT});
is($state, '0A000', 'a commit whose ON COMMIT action fails fails');
ok($c->caught_up(1), 'applied everywhere');
is(join(',', map { $c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM public.k WHERE id = 4') } ($l, $f)),
	'0,0', 'and its row is nowhere');
$L->safe_psql('postgres', q{BEGIN; INSERT INTO public.k VALUES (5, 5);
	CREATE TEMP TABLE td (id int) ON COMMIT DROP; CREATE TEMP TABLE te (id int) ON COMMIT DELETE ROWS;
	INSERT INTO td VALUES (1); INSERT INTO te VALUES (1); COMMIT;
	SELECT count(*) FROM te});
ok($c->caught_up(1), 'a commit with ON COMMIT DROP and DELETE ROWS is applied everywhere');
is(join(',', map { $c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM public.k WHERE id = 5') } ($l, $f)),
	'1,1', 'with its row');

# 6. A value as deep as the leader's max_stack_depth lets it be.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.j (id int PRIMARY KEY, a jsonb)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.j', 1)");
$L->safe_psql('postgres', q{SET max_stack_depth = '6MB';
	INSERT INTO public.j SELECT 1, (repeat('[', 20000) || repeat(']', 20000))::jsonb});
ok($c->caught_up(1), 'a jsonb of 20000 levels is applied everywhere');
$q = q{SELECT md5(a::text) FROM public.j WHERE id = 1};
is($c->node($f)->safe_psql('postgres', $q), $L->safe_psql('postgres', $q),
	'the follower has it');

# 5. Half a transaction after a crash.  The leader's WAL writer is stopped,
# so that nothing but the commit itself writes its WAL out.
$L->safe_psql('postgres', 'CREATE TABLE public.loc (id int PRIMARY KEY)');
my $ww = $L->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'});
ok($ww =~ /^\d+$/, 'the leader\'s WAL writer');
kill 'STOP', $ww;
$L->safe_psql('postgres', q{SET synchronous_commit = off; BEGIN; INSERT INTO public.k VALUES (6, 6);
	INSERT INTO public.loc VALUES (6); COMMIT});
$c->crash($l);
$L->start;
ok($c->caught_up(1), 'the leader restarted and applied the log');
is($L->safe_psql('postgres', q{SELECT (SELECT count(*) FROM public.k WHERE id = 6) || ',' ||
	(SELECT count(*) FROM public.loc WHERE id = 6)}), '1,1',
	'the transaction\'s replicated row and its local row are both there');
done_testing();

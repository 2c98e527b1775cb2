# The settings an execute() command runs with (review 20 items 5 and 6).
# 1. A role with ALTER ROLE ... SET check_function_bodies = off: the try of
#    its command ran with the role's setting (off), every member's apply
#    worker with its own (on): a function body that does not compile passed
#    the try and stopped the group on every member.
# 2. Members with another TimeZone (or DateStyle) in postgresql.conf: a
#    command whose constants fold at DDL time (a timestamptz literal in a
#    CHECK, a date literal in DMY) made each member's constraint its own, and
#    a row that the leader took stopped the other member's apply.
# Every member now runs a command, and its try, with fixed settings.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
# Node 2 reads times in Tokyo and dates day first; node 1 has initdb's.
$c->node(2)->append_conf('postgresql.conf', "timezone = 'Asia/Tokyo'\ndatestyle = 'ISO, DMY'\n");
$c->node(2)->restart;
$c->create_group($_) for 1, 2;    # one for each part
my $l = $c->leader(1);

sub applying
{
	my ($g, $what) = @_;
	ok($c->caught_up($g), "$what: applied everywhere");
	for my $id ($c->ids)
	{
		is($c->node($id)->safe_psql('postgres',
				"SELECT coalesce(error, state) FROM dragonraft.status WHERE group_id = $g"), 'ok',
			"$what: node $id applies group $g");
	}
}

# 1. A role whose own settings turn check_function_bodies off.
$c->node($_)->safe_psql('postgres', 'CREATE ROLE nocheck LOGIN SUPERUSER') for $c->ids;
$c->node($l)->safe_psql('postgres', 'ALTER ROLE nocheck SET check_function_bodies = off');
my ($out, $err) = ('', '');
$c->node($l)->psql('postgres', q{SHOW check_function_bodies;
	SELECT dragonraft.execute(1, 'CREATE FUNCTION public.broken() RETURNS int LANGUAGE sql AS $$SELECT 1 FROM nosuch$$')},
	stdout => \$out, stderr => \$err, extra_params => [ '-U', 'nocheck' ]);
diag "execute() as a role with check_function_bodies off: " . ($err eq '' ? "accepted ($out)" : "refused: $err");
like($out, qr/^off/, 'the role has check_function_bodies off');
like($err, qr/relation "nosuch" does not exist.*nothing was proposed/s,
	'its body that does not compile is refused by the try');
applying(1, 'a body that does not compile, from a role with check_function_bodies off');

# 2. A CHECK with a timestamptz literal, and one with a date literal.
$l = $c->leader(2);
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(2, $$CREATE TABLE public.ev (id int PRIMARY KEY,
	at timestamptz CHECK (at >= '2026-01-01 00:00'), d date CHECK (d >= '01/02/2026'))$$)});
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.ev', 2)");
my @defs = map {
	$c->node($_)->safe_psql('postgres', q{SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
		SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint
		WHERE conrelid = 'public.ev'::regclass AND contype = 'c'})
} $c->ids;
diag "node 1: $defs[0]\nnode 2: $defs[1]";
is($defs[1], $defs[0], 'both members fold the literals alike');
like($defs[0], qr/2026-01-01 00:00:00\+00.*2026-01-02/, 'in UTC, month first');
# A row that node 2 took under its own reading (after 2025-12-31 15:00 UTC)
# and node 1 refused (before 2026-01-01 00:00 UTC): node 2 leads and writes it.
ok($c->lead(2, 2), 'node 2 leads');
my ($st, $msg) = $c->sql_error(2, q{INSERT INTO ev VALUES (1, '2025-12-31 20:00+00', '2026-03-01')});
diag "a row between the two readings on node 2: " . ($st eq '' ? 'accepted' : "refused: $msg");
$c->node(2)->safe_psql('postgres', q{INSERT INTO ev VALUES (2, '2026-01-01 01:00+00', '2026-03-01')});
applying(2, 'a CHECK with time and date literals');
my @rows = map {
	$c->node($_)->safe_psql('postgres', q{SET TimeZone = 'UTC';
		SELECT coalesce(string_agg(t::text, ';' ORDER BY id), '') FROM ev t})
} $c->ids;
is($rows[1], $rows[0], 'the members have the same rows');

done_testing();

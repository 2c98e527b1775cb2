# Closing note 18's untested case of execute()'s fixed settings: a money
# constant in a CHECK, on a member whose postgresql.conf says another
# lc_monetary.  PostgreSQL reads a money literal with lc_monetary when the
# command runs (the CHECK keeps the value): '1.000' is one dollar under C and
# a thousand euros under de_DE, whose decimal point is a comma.  execute()
# runs the command with lc_monetary C on every member (and its try), so the
# members' constraints must hold the same value, whichever member proposed
# the command.
#
# The de_DE locale is built for the test with localedef into a directory of
# its own (LOCPATH), not installed on the machine; skipped without localedef.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $locales = PostgreSQL::Test::Utils::tempdir();
chmod 0755, $locales;
system("localedef -i de_DE -f UTF-8 $locales/de_DE.UTF-8 >/dev/null 2>&1");
plan skip_all => 'localedef could not build de_DE.UTF-8' unless -d "$locales/de_DE.UTF-8";
$ENV{LOCPATH} = $locales;    # the servers inherit it

my $c = DragonCluster->new(2);
$c->create_group(1);
my $l = $c->leader(1);
my ($f) = grep { $_ != $l } $c->ids;
$c->node($f)->append_conf('postgresql.conf', "lc_monetary = 'de_DE.UTF-8'\n");
$c->node($f)->restart;
is($c->query($f, 'SHOW lc_monetary'), 'de_DE.UTF-8', "node $f: lc_monetary is de_DE.UTF-8");
is($c->query($f, q{SELECT '1.000'::money::numeric}), '1000.00', "node $f: a session there reads '1.000' as a thousand");
is($c->query($l, q{SELECT '1.000'::money::numeric}), '1.00', "node $l: a session there reads it as one");
$l = $c->leader(1);

# One table's command proposed by each member.
$c->node($l)->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, $$CREATE TABLE public.m1 (k int PRIMARY KEY, a money CHECK (a <= '1.000'))$$)});
$c->node($f)->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, $$CREATE TABLE public.m2 (k int PRIMARY KEY, a money CHECK (a <= '1.000'))$$)});
# (once the leader applied node ${f}'s command: a replicate_table that
# read the schema before it is refused with 40001, as CI saw once)
ok($c->caught_up(1), 'both commands are applied everywhere');
$c->node($l)->safe_psql('postgres', qq{SELECT dragonraft.replicate_table('public.$_', 1)}) for qw(m1 m2);
ok($c->caught_up(1), 'the commands and registrations are applied everywhere');

# The value the constraints hold, read alike on each member.
my $q = q{SELECT string_agg(conrelid::regclass || ': ' || pg_get_constraintdef(oid) || ' ' || conbin::text, E'\n'
                            ORDER BY conrelid::regclass::text)
            FROM pg_constraint WHERE conrelid IN ('public.m1'::regclass, 'public.m2'::regclass) AND contype = 'c'};
my $q_c = "SET lc_monetary = 'C'; $q";
my %defs = map { $_ => $c->node($_)->safe_psql('postgres', $q_c) } ($l, $f);
like($defs{$l}, qr/m1: CHECK \(\(a <= '\$1\.00'::money\)\).*\n.*m2: CHECK \(\(a <= '\$1\.00'::money\)\)/,
	"node $l: both constraints hold one dollar");
is($defs{$f}, $defs{$l}, "node $f: its constraints hold the same values");

# Rows: one dollar passes on every member, two are refused on the leader.
$c->node($l)->safe_psql('postgres', q{SET lc_monetary = 'C'; INSERT INTO m1 VALUES (1, '1.00'); INSERT INTO m2 VALUES (1, '1.00')});
my ($rc, $out, $err) = $c->node($l)->psql('postgres', q{SET lc_monetary = 'C'; INSERT INTO m1 VALUES (2, '2.00')});
like($err, qr/violates check constraint/, "node $l: two dollars are refused");
ok($c->caught_up(1), 'the rows are applied everywhere');
for my $id ($l, $f)
{
	is($c->query($id, q{SELECT (SELECT string_agg(k || ':' || a::numeric, ',') FROM m1) || ' ' ||
	                           (SELECT string_agg(k || ':' || a::numeric, ',') FROM m2)}),
		'1:1.00 1:1.00', "node $id has the rows");
	is($c->query($id, q{SELECT state || coalesce('|' || error, '') FROM dragonraft.status WHERE group_id = 1}),
		'ok', "node $id: the group applies, no error");
}
done_testing();

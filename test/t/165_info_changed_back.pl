# A node's member info is what the group's log says of it last (rev98).
#
# One node, groups 1 and 2.  The apply worker is held (a trigger on
# member_info waits for an advisory lock a session holds), so the entries
# stay committed and handed to the apply side, not applied.  The client
# address goes A -> B -> A -> B by reload (each committed in both groups: the
# client_address file says so), then the server restarts with A.  The
# entries B, A, B are handed to the apply side again: A, equal to what the
# node would propose now, made it take its info as known (b74b1f0), and the
# B after it left the groups saying B of the node for good, while the file
# said that every group had A.  The last B must make it propose A again
# (tests 6, 7 and 9 fail without: the groups' member_info shows B).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $N1 = $c->node(1);
my $port = $N1->port;
my %addr = map { $_ => "host=127.0.0.1 port=$port application_name=$_" } qw(a b);
my $file = $N1->data_dir . '/dragonraft/client_address';

sub set_address
{
	my ($a) = @_;
	$N1->append_conf('postgresql.conf', "dragonraft.client_address = '$addr{$a}'");
}

# Every group committed address a: the file says so.
sub file_says
{
	my ($a) = @_;
	return $c->wait_until("the client_address file to say $a",
		sub {
			# (a reload removes the file: between -f and the read too)
			my $text = -f $file ? eval { slurp_file($file) } : undef;
			defined $text && index($text, "$addr{$a}\n") == 0;
		});
}

sub info_of
{
	my ($g, $a) = @_;
	return $c->wait_until("group $g to apply address $a", sub {
			($c->poll(1, "SELECT client_address FROM dragonraft.member_info WHERE group_id = $g") // '')
			  eq $addr{$a} });
}

set_address('a');
$N1->reload;
$c->create_group($_, 1) for 1, 2;
ok(info_of(1, 'a') && info_of(2, 'a') && file_says('a'), 'both groups applied address a');

my $holder = $c->start_session(1, 'SELECT pg_advisory_lock(165)', 'SELECT pg_sleep(3600)');
$c->query(1, q{
	CREATE FUNCTION public.wait_for_165() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN PERFORM pg_advisory_xact_lock_shared(165); RETURN NEW; END$$;
	CREATE TRIGGER hold BEFORE INSERT OR UPDATE ON dragonraft.member_info
	  FOR EACH ROW EXECUTE FUNCTION public.wait_for_165();
	ALTER TABLE dragonraft.member_info ENABLE ALWAYS TRIGGER hold;
});

# B, A, B: each committed in both groups (the file follows), applied in neither.
for my $a (qw(b a b)) {
	set_address($a);
	$N1->reload;
	ok(file_says($a), "address $a: committed in both groups");
}
is( $c->query(1, q{SELECT string_agg(group_id || ' ' || client_address, ', ' ORDER BY group_id)
	                 FROM dragonraft.member_info}),
	"1 $addr{a}, 2 $addr{a}", 'applied in neither');

# Restart with A: the groups' B, A, B are handed to the apply side again.
my %commit = map { $_ => $c->query(1, "SELECT commit_index FROM dragonraft.status WHERE group_id = $_") } 1, 2;
$N1->stop('fast');
set_address('a');
$N1->start;
$holder->{h}->kill_kill;
$c->engine_running(1);
# The entries B, A, B are handed again, and applied (the lock is gone); the
# last B says that the groups need A again.
for my $g (1, 2) {
	ok( $c->wait_until("group $g to apply its entries and say address a", sub {
				($c->poll(1, qq{SELECT i.client_address = '$addr{a}' AND s.applied_index >= $commit{$g}
				                   AND s.applied_index = s.commit_index
				                  FROM dragonraft.status s JOIN dragonraft.member_info i USING (group_id)
				                 WHERE group_id = $g}) // '') eq 't' }),
		"group $g applied the entries and says address a of the node");
}
ok(file_says('a'), 'and the file says every group has it');
is( $c->query(1, q{SELECT string_agg(group_id || ' ' || client_address, ', ' ORDER BY group_id)
	                 FROM dragonraft.member_info}),
	"1 $addr{a}, 2 $addr{a}", 'both groups say address a of the node');

done_testing();

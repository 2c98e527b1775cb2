# Review 24: add_member / remove_member cancelled (statement_timeout,
# pg_cancel_backend) while the engine worker runs the membership change.
# The change was proposed and commits once a quorum answers, but the caller
# was told 57014 (canceling statement), which says nothing happened: the
# error must say that the change may still apply (40003), as it does when the
# engine's own request timeout ends the wait.  The followers' servers are
# SIGSTOPped (within an election timeout: the leader keeps leading), so the
# change waits for a quorum while statement_timeout fires; then continued.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 100\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'a leader');
my @f = grep { $_ != $l } $c->ids;

# Stop the followers; the leader's change cannot commit until they continue.
sub stop_followers { kill 'STOP', map { $c->server_pids($_) } @f; }
sub cont_followers { kill 'CONT', map { $c->server_pids($_) } @f; }

sub member_count
{
	my ($node) = @_;
	return $c->poll($l, "SELECT count(*) FROM dragonraft.members WHERE group_id = 1 AND node_id = $node");
}

# 1. add_member of a non-voter (no quorum check) times out.
stop_followers();
my ($state, $err) = $c->sql_error($l,
	"SET statement_timeout = '1s';\nSELECT dragonraft.add_member(1, 4, '127.0.0.1:9', false);");
cont_followers();
diag "add_member: $state $err";
$c->caught_up(1);
# (dragonraft.members follows the engine's copy of the status: give it time)
$c->wait_until('node 4 to show as a member', sub { member_count(4) == 1 }, 10) if $state ne '';
my $added = member_count(4);
diag "node 4 member afterwards: $added";
ok($state eq '40003' || ($state ne '' && $added == 0) || ($state eq '' && $added == 1),
	"add_member's outcome ($state) is what happened (node 4 member: $added)");

# 2. remove_member of that non-voter (if it was added), cancelled by pg_cancel_backend.
if ($added == 1)
{
	stop_followers();
	my ($in, $out, $rerr) = ("\\set VERBOSITY verbose\nSELECT dragonraft.remove_member(1, 4, false);\n", '', '');
	my $h = IPC::Run::start(['psql', '-XAtq', '-d', $c->node($l)->connstr('postgres')],
		'<', \$in, '>', \$out, '2>', \$rerr);
	$c->wait_until('remove_member to wait', sub {
		$h->pump_nb;
		($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT dragonraft.remove_member%' AND wait_event_type = 'Extension'") // 0) == 1 });
	$c->poll($l, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT dragonraft.remove_member%'");
	$h->finish;
	cont_followers();
	my ($rstate) = ($rerr =~ /ERROR:\s+([0-9A-Z]{5}):/);
	$rstate //= '';
	diag "remove_member: $rstate $rerr";
	$c->caught_up(1);
	$c->wait_until('node 4 to leave the members', sub { member_count(4) == 0 }, 10) if $rstate ne '';
	my $left = member_count(4);
	ok($rstate eq '40003' || ($rstate ne '' && $left == 1) || ($rstate eq '' && $left == 0),
		"remove_member's outcome ($rstate) is what happened (node 4 member: $left)");
}

# The group works, the members agree.
$c->node($l)->safe_psql('postgres', 'SELECT dragonraft.execute(1, $$CREATE TABLE t (id int PRIMARY KEY)$$)');
ok($c->caught_up(1), 'every member applies the group afterwards');
done_testing();

# 005_failover (kill -9 of a follower and then of the leader under transfer
# load, a full cluster crash and restart) with dragonraft.deferred_leader_sync
# on: the leader writes its entries unsynced and syncs them in the
# background, so SIGKILL and restarts meet entries it wrote but had not
# synced; every COMMIT must still be everywhere.
use strict;
use warnings;
use FindBin;
# (Loaded here, at compile time: their INIT blocks, which set up the test
# directory and the port lock directory, do not run for a module first
# loaded by the do below.)
use lib $FindBin::RealBin;
use PostgreSQL::Test::Utils;
use PostgreSQL::Test::Cluster;
use DragonCluster;

$ENV{DR_TAP_CONF} = "dragonraft.deferred_leader_sync = on\n";
my $rc = do "$FindBin::RealBin/005_failover.pl";
die $@ if $@;

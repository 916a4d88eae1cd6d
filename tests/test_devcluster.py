"""The dev cluster every other test relies on: shape, slot coverage, node restart."""
from geproxy.devcluster import NSLOTS, command


def test_shape_and_slots(cluster):
    assert len(cluster.masters()) == 3
    assert len(cluster.replicas()) == 3
    for port in cluster.ports:
        info = command(cluster.host, port, 'CLUSTER', 'INFO')
        assert 'cluster_state:ok' in info
        assert 'cluster_slots_assigned:%d' % NSLOTS in info
    slots = command(cluster.host, cluster.ports[0], 'CLUSTER', 'SLOTS')
    assert sum(end - start + 1 for start, end, *_ in slots) == NSLOTS


def test_redis_py_client(cluster):
    c = cluster.client(cluster.masters()[0])
    try:
        assert c.ping() is True
        assert c.execute_command('CLUSTER', 'KEYSLOT', 'foo') == 12182
    finally:
        c.close()


def test_replica_kill_and_restart(cluster):
    replica = cluster.replicas()[0]
    cluster.kill(replica)
    assert replica not in cluster.alive()
    cluster.wait_ok(30)  # remaining nodes still serve every slot
    cluster.restart(replica)
    cluster.wait_ok(30)  # wait_ok also requires every live node to be known again
    assert replica in cluster.replicas()
    assert len(cluster.masters()) == 3 and len(cluster.replicas()) == 3

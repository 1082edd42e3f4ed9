using System.Text;
using Keyway.Environments;

namespace Keyway.Tests.Environments;

// The feed and the relay's wire format, without a database: the replica tests cover the rest.
public sealed class ReplicaChangeFeedTests
{
    [Fact]
    public void A_change_survives_the_round_trip_through_a_notification_payload()
    {
        var payload = ChangeRelay.Payload(new Change("resources", "github"), "replica-1");

        Assert.Equal("""{"kind":"resources","name":"github","origin":"replica-1"}""", payload);
        Assert.Equal((new Change("resources", "github"), "replica-1"), ChangeRelay.Parse(payload));
    }

    [Fact]
    public void A_change_too_big_for_a_notification_is_sent_as_drop_everything()
    {
        var payload = ChangeRelay.Payload(new Change("resources", new string('é', 5000)), "replica-1");

        Assert.True(Encoding.UTF8.GetByteCount(payload) < 8000);
        Assert.Equal((ChangeFeed.All, "replica-1"), ChangeRelay.Parse(payload));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"kind":"resources"}""")]
    [InlineData("""{"kind":null,"name":"x","origin":"o"}""")]
    [InlineData("[]")]
    public void A_payload_that_cannot_be_read_drops_everything(string payload) =>
        Assert.Equal(ChangeFeed.All, ChangeRelay.Parse(payload).Change);

    [Fact]
    public void Reconnect_delays_grow_with_jitter_and_stay_bounded()
    {
        for (var failures = 1; failures < 100; failures++)
        {
            var delay = ChangeRelay.Backoff(failures);
            Assert.InRange(delay, TimeSpan.FromMilliseconds(125), TimeSpan.FromSeconds(30));
        }

        Assert.InRange(ChangeRelay.Backoff(1), TimeSpan.FromMilliseconds(125), TimeSpan.FromMilliseconds(250));
        Assert.InRange(ChangeRelay.Backoff(50), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Publishing_invalidates_this_process_at_once_and_queues_the_change_for_the_other_replicas()
    {
        var feed = new ChangeFeed(replicated: true);
        var seen = new List<Change>();
        feed.Changed += seen.Add;

        feed.Publish(new Change("keys", "key_1"));

        Assert.Equal([new Change("keys", "key_1")], seen);
        Assert.True(feed.Outbox!.TryRead(out var queued));
        Assert.Equal(new Change("keys", "key_1"), queued);
    }

    [Fact]
    public void A_change_raised_from_another_replica_is_not_sent_back_out()
    {
        var feed = new ChangeFeed(replicated: true);
        var seen = new List<Change>();
        feed.Changed += seen.Add;

        feed.Raise(new Change("variables", "production"));

        Assert.Single(seen);
        Assert.False(feed.Outbox!.TryRead(out _));
    }

    [Fact]
    public void A_feed_for_one_process_queues_nothing() => Assert.Null(new ChangeFeed().Outbox);
}

using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

public sealed class BuiltUrlsTests
{
    [Fact]
    public void A_path_asked_for_again_is_the_same_url_and_a_new_base_gets_its_own()
    {
        var baseUrl = new Uri("https://api.example.com/v1/");
        var first = BuiltUrls.Get(baseUrl, "items/42");
        Assert.Same(first, BuiltUrls.Get(baseUrl, "items/42"));
        Assert.Equal("https://api.example.com/v1/items/42", first.AbsoluteUri);

        // A resource resolved again has a new base URL object, even with the same text: nothing of the old one is used.
        var again = new Uri("https://api.example.com/v1/");
        Assert.NotSame(first, BuiltUrls.Get(again, "items/42"));
        Assert.Equal(OutboundUrl.Build(baseUrl, null), BuiltUrls.Get(baseUrl, null));
    }

    [Fact]
    public void A_rejected_path_is_rejected_every_time_and_a_long_path_is_not_kept()
    {
        var baseUrl = new Uri("https://api.example.com/v1/");
        for (var i = 0; i < 2; i++)
        {
            Assert.Throws<OutboundRequestException>(() => BuiltUrls.Get(baseUrl, "../admin"));
        }

        var longPath = new string('a', BuiltUrls.MaxPathLength + 1);
        Assert.NotSame(BuiltUrls.Get(baseUrl, longPath), BuiltUrls.Get(baseUrl, longPath));
        Assert.Equal(OutboundUrl.Build(baseUrl, longPath), BuiltUrls.Get(baseUrl, longPath));
    }
}

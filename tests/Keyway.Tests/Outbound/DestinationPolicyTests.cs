using System.Net;
using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

// Pure decisions on addresses: nothing here opens a connection.
public sealed class DestinationPolicyTests
{
    [Theory]
    [InlineData("169.254.169.254", "169.254.0.0/16")]
    [InlineData("169.254.0.1", "169.254.0.0/16")]
    [InlineData("169.254.255.255", "169.254.0.0/16")]
    [InlineData("fe80::1", "fe80::/10")]
    [InlineData("fe80::1%2", "fe80::/10")]
    [InlineData("febf:ffff::1", "fe80::/10")]
    [InlineData("100.100.100.200", "100.100.100.200/32")]
    [InlineData("fd00:ec2::254", "fd00:ec2::254/128")]
    [InlineData("0.0.0.0", "0.0.0.0/8")]
    [InlineData("0.1.2.3", "0.0.0.0/8")]
    [InlineData("::", "::/128")]
    [InlineData("224.0.0.1", "224.0.0.0/4")]
    [InlineData("239.255.255.250", "224.0.0.0/4")]
    [InlineData("ff02::1", "ff00::/8")]
    [InlineData("255.255.255.255", "255.255.255.255/32")]
    [InlineData("::ffff:169.254.169.254", "169.254.0.0/16")]
    [InlineData("::ffff:100.100.100.200", "100.100.100.200/32")]
    // IPNetwork.Contains would also put these in fe80::/10; the rule named must be the right one.
    [InlineData("::ffff:0.0.0.0", "0.0.0.0/8")]
    [InlineData("::ffff:0.0.0.1", "0.0.0.0/8")]
    [InlineData("64:ff9b::169.254.169.254", "169.254.0.0/16")]
    [InlineData("64:ff9b::a9fe:a9fe", "169.254.0.0/16")]
    public void A_default_denied_address_is_denied_by_its_range(string address, string range)
    {
        var allowed = DestinationPolicy.Default.IsAllowed(IPAddress.Parse(address), out var denyingRange);
        Assert.False(allowed);
        Assert.Equal(IPNetwork.Parse(range), denyingRange);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("10.1.2.3")]
    [InlineData("172.16.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("100.64.0.1")]
    [InlineData("fd12:3456::1")]
    [InlineData("93.184.215.14")]
    [InlineData("2606:4700::1111")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("169.253.255.255")]
    [InlineData("169.255.0.0")]
    [InlineData("100.100.100.201")]
    [InlineData("fd00:ec2::253")]
    [InlineData("::2")]
    [InlineData("223.255.255.255")]
    [InlineData("64:ff9b::10.0.0.1")]
    public void Loopback_private_and_public_addresses_are_allowed_by_default(string address) =>
        Assert.True(DestinationPolicy.Default.IsAllowed(IPAddress.Parse(address)));

    [Fact]
    public void A_configured_deny_range_adds_to_the_defaults()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Deny = ["10.0.0.0/8", "127.0.0.2"] });

        Assert.False(policy.IsAllowed(IPAddress.Parse("10.20.30.40")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("::ffff:10.20.30.40")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("127.0.0.2")));
        Assert.True(policy.IsAllowed(IPAddress.Parse("127.0.0.1")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("169.254.169.254")));
    }

    [Fact]
    public void An_allow_range_overrides_a_deny_range()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions
        {
            Deny = ["10.0.0.0/8"],
            Allow = ["10.1.0.0/16", "169.254.10.0/24"],
        });

        Assert.True(policy.IsAllowed(IPAddress.Parse("10.1.2.3")));
        Assert.True(policy.IsAllowed(IPAddress.Parse("::ffff:10.1.2.3")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("10.2.0.1")));
        Assert.True(policy.IsAllowed(IPAddress.Parse("169.254.10.5")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("169.254.169.254")));
    }

    [Fact]
    public void An_ipv4_mapped_allow_range_is_honoured_for_the_ipv4_address()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["::ffff:169.254.169.254/128"] });
        Assert.True(policy.IsAllowed(IPAddress.Parse("::ffff:169.254.169.254")));
    }

    [Theory]
    [InlineData("not a range")]
    [InlineData("10.0.0.0/33")]
    [InlineData("10.0.0.0/-1")]
    [InlineData("10.0.0.1/8")]
    [InlineData("fe80::/129")]
    [InlineData("10.0.0/8")]
    [InlineData("")]
    [InlineData("10.0.0.0/8/8")]
    [InlineData("010.0.0.0/8")]
    [InlineData("10.1/16")]
    [InlineData("0x7f.0.0.1")]
    [InlineData("fe80::%1/10")]
    [InlineData("fe80::1/10")]
    [InlineData("10.0.0.0/+8")]
    public void Bad_CIDR_text_fails_at_start_with_a_message_that_names_it(string range)
    {
        var options = new DestinationPolicyOptions { Deny = ["10.0.0.0/8", range] };

        var ex = Assert.Throws<ArgumentException>(() => new DestinationPolicy(options));
        Assert.Contains($"Deny[1] '{range}' is not a CIDR range", ex.Message, StringComparison.Ordinal);

        var errors = DestinationPolicy.Validate(options);
        Assert.Single(errors);

        Assert.Throws<ArgumentException>(() => new DestinationPolicy(new DestinationPolicyOptions { Allow = [range] }));
    }

    [Fact]
    public void Valid_options_have_no_validation_errors() =>
        Assert.Empty(DestinationPolicy.Validate(new DestinationPolicyOptions { Deny = ["10.0.0.0/8", "::1", " 192.168.0.0/16 "], Allow = ["fd00::/8"] }));
}

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
    [InlineData("127.0.0.1", "127.0.0.0/8")]
    [InlineData("127.1.2.3", "127.0.0.0/8")]
    [InlineData("127.255.255.254", "127.0.0.0/8")]
    [InlineData("::1", "::1/128")]
    [InlineData("::ffff:127.0.0.1", "127.0.0.0/8")]
    [InlineData("::ffff:7f00:1", "127.0.0.0/8")]
    [InlineData("64:ff9b::127.0.0.1", "127.0.0.0/8")]
    [InlineData("64:ff9b:1::7f00:1", "127.0.0.0/8")]
    [InlineData("::127.0.0.1", "127.0.0.0/8")]
    [InlineData("::169.254.169.254", "169.254.0.0/16")]
    [InlineData("::2", "0.0.0.0/8")]
    [InlineData("2002:7f00:1::1", "127.0.0.0/8")]
    [InlineData("2002:a9fe:a9fe::", "169.254.0.0/16")]
    [InlineData("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.0/8")]
    public void A_default_denied_address_is_denied_by_its_range(string address, string range)
    {
        var allowed = DestinationPolicy.Default.IsAllowed(IPAddress.Parse(address), out var denyingRange);
        Assert.False(allowed);
        Assert.Equal(IPNetwork.Parse(range), denyingRange);
    }

    [Theory]
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
    [InlineData("223.255.255.255")]
    [InlineData("64:ff9b::10.0.0.1")]
    [InlineData("128.0.0.1")]
    [InlineData("126.255.255.255")]
    [InlineData("::ffff:192.168.1.1")]
    [InlineData("2002:0a00:0001::1")]
    public void Private_and_public_addresses_are_allowed_by_default(string address) =>
        Assert.True(DestinationPolicy.Default.IsAllowed(IPAddress.Parse(address)));

    [Fact]
    public void A_configured_deny_range_adds_to_the_defaults()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Deny = ["10.0.0.0/8", "192.168.1.2"] });

        Assert.False(policy.IsAllowed(IPAddress.Parse("10.20.30.40")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("::ffff:10.20.30.40")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("192.168.1.2")));
        Assert.True(policy.IsAllowed(IPAddress.Parse("192.168.1.1")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("169.254.169.254")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("127.0.0.1")));
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

    [Fact]
    public void Allowing_ipv4_loopback_does_not_open_ipv6_loopback_nor_the_reverse()
    {
        var v4 = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8"] });
        Assert.True(v4.IsAllowed(IPAddress.Parse("127.0.0.1")));
        Assert.True(v4.IsAllowed(IPAddress.Parse("::ffff:127.0.0.1"))); // the same IPv4 host, written in IPv6
        Assert.False(v4.IsAllowed(IPAddress.Parse("::1"), out var range));
        Assert.Equal(IPNetwork.Parse("::1/128"), range);
        Assert.False(v4.IsAllowed(IPAddress.Parse("0.0.0.0")));
        Assert.False(v4.IsAllowed(IPAddress.Parse("::")));

        var v6 = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["::1/128"] });
        Assert.True(v6.IsAllowed(IPAddress.Parse("::1")));
        Assert.False(v6.IsAllowed(IPAddress.Parse("127.0.0.1")));
        Assert.False(v6.IsAllowed(IPAddress.Parse("::ffff:127.0.0.1")));
    }

    [Fact]
    public void Between_allow_and_deny_the_narrower_range_wins_and_a_tie_denies()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8", "10.0.0.0/8"], Deny = ["127.0.0.2/32", "10.0.0.0/8"] });

        Assert.True(policy.IsAllowed(IPAddress.Parse("127.0.0.1")));
        Assert.Equal(DenialSource.Setting, policy.Check(IPAddress.Parse("127.0.0.2"), 80)?.Source);
        Assert.Equal(DenialSource.Setting, policy.Check(IPAddress.Parse("::ffff:127.0.0.2"), 80)?.Source);
        Assert.Equal(DenialSource.Setting, policy.Check(IPAddress.Parse("10.1.2.3"), 80)?.Source);
    }

    [Fact]
    public void A_deny_setting_covers_ipv6_loopback_when_it_lists_it()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Deny = ["::1/128", "fd12::/16"] });
        Assert.False(policy.IsAllowed(IPAddress.Parse("::1")));
        Assert.Equal(DenialSource.Setting, policy.Check(IPAddress.Parse("fd12::1"), 443)?.Source);
    }

    [Fact]
    public void A_refusal_names_the_range_and_the_setting_that_denies_or_would_allow_it()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Deny = ["10.0.0.0/8"] });

        var byDefault = policy.Check(IPAddress.Parse("::1"), 80);
        Assert.Equal(new DestinationDenial(IPNetwork.Parse("::1/128"), DenialSource.Default), byDefault);
        var text = byDefault!.Value.Explain(IPAddress.Parse("::1"), 80);
        Assert.Contains("::1/128", text, StringComparison.Ordinal);
        Assert.Contains("denies by default", text, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_OUTBOUND_ALLOW", text, StringComparison.Ordinal);

        var bySetting = policy.Check(IPAddress.Parse("10.1.2.3"), 80);
        Assert.Equal(DenialSource.Setting, bySetting?.Source);
        var setting = bySetting!.Value.Explain(IPAddress.Parse("10.1.2.3"), 80);
        Assert.Contains("10.0.0.0/8", setting, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_OUTBOUND_DENY", setting, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:7510", "127.0.0.1", 7510)]
    [InlineData("http://127.0.0.1:7510", "127.0.0.5", 7510)]
    [InlineData("http://127.0.0.1:7510", "::1", 7510)]
    [InlineData("http://127.0.0.1:7510", "::ffff:127.0.0.1", 7510)]
    [InlineData("http://127.0.0.1:7510", "0.0.0.0", 7510)]
    [InlineData("http://127.0.0.1:7510", "::", 7510)]
    [InlineData("http://localhost:5000", "127.0.0.1", 5000)]
    [InlineData("http://[::]:8080", "::1", 8080)]
    [InlineData("http://+:8080", "127.0.0.1", 8080)]
    [InlineData("https://10.9.8.7:8443", "10.9.8.7", 8443)]
    [InlineData("https://10.9.8.7:8443", "::ffff:10.9.8.7", 8443)]
    public void Keyways_own_listeners_are_denied_even_when_allowed(string listener, string address, int port)
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "10.0.0.0/8"] });
        policy.SetOwnListeners([listener, "http://127.0.0.1:9999"]);

        var denial = policy.Check(IPAddress.Parse(address), port);

        Assert.Equal(DenialSource.OwnListener, denial?.Source);
        Assert.Contains("own listeners", denial!.Value.Explain(IPAddress.Parse(address), port), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:7510", "127.0.0.1", 7511)]
    [InlineData("https://10.9.8.7:8443", "10.9.8.6", 8443)]
    public void Another_port_or_address_than_Keyways_own_is_left_to_the_ranges(string listener, string address, int port)
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8"] });
        policy.SetOwnListeners([listener]);
        Assert.Null(policy.Check(IPAddress.Parse(address), port));
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

using Keyway.Storage;
using Npgsql;

namespace Keyway.Tests.Storage;

/// <summary><c>--database postgres://…</c> as Npgsql takes it.</summary>
public sealed class PostgresUrlTests
{
    [Fact]
    public void A_url_becomes_a_connection_string_that_gives_a_connection_five_seconds_to_open()
    {
        var builder = new NpgsqlConnectionStringBuilder(PostgresUrl.ToConnectionString("postgres://keyway:p%40ss@db.internal:6432/app?sslmode=require"));

        Assert.Equal("db.internal", builder.Host);
        Assert.Equal(6432, builder.Port);
        Assert.Equal("app", builder.Database);
        Assert.Equal("keyway", builder.Username);
        Assert.Equal("p@ss", builder.Password);
        Assert.Equal(SslMode.Require, builder.SslMode);
        Assert.Equal(PostgresUrl.DefaultConnectTimeoutSeconds, builder.Timeout);
    }

    [Fact]
    public void Any_npgsql_setting_in_the_query_wins_over_the_defaults()
    {
        var builder = new NpgsqlConnectionStringBuilder(PostgresUrl.ToConnectionString("postgres://keyway@db/app?Timeout=12&Pooling=false"));

        Assert.Equal(12, builder.Timeout);
        Assert.False(builder.Pooling);
    }
}

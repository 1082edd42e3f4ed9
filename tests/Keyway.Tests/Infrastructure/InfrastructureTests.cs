using System.Net;
using Npgsql;
using Xunit.Abstractions;

namespace Keyway.Tests.Infrastructure;

[Trait("Category", "Integration")]
public sealed class PostgresServerTests(PostgresServer postgres, ITestOutputHelper output) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task PostgreSQL_starts_and_answers_SELECT_1_on_loopback()
    {
        var database = await postgres.CreateDatabaseAsync();

        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 1", connection);

        Assert.Equal(1, await command.ExecuteScalarAsync());
        output.WriteLine($"PostgreSQL (initdb + start) took {postgres.StartDuration.TotalMilliseconds:0} ms");
        Assert.Equal("127.0.0.1", new NpgsqlConnectionStringBuilder(database.ConnectionString).Host);
        Assert.Equal($"postgres://keyway@127.0.0.1:{postgres.Port}/{database.Name}", database.Url);
    }

    [Fact]
    public async Task Two_databases_do_not_see_each_others_tables()
    {
        var first = await postgres.CreateDatabaseAsync();
        var second = await postgres.CreateDatabaseAsync();

        await ExecuteAsync(first.ConnectionString, "CREATE TABLE only_in_first (id int)");

        Assert.Equal(1L, await ExecuteAsync(first.ConnectionString, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'"));
        Assert.Equal(0L, await ExecuteAsync(second.ConnectionString, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'"));
    }

    private static async Task<object?> ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}

[Trait("Category", "Integration")]
public sealed class UpstreamServerTests : IAsyncLifetime
{
    private static readonly HttpClient _client = new();
    private UpstreamServer _upstream = null!;

    public async Task InitializeAsync() => _upstream = await UpstreamServer.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task The_upstream_echoes_method_path_query_headers_cookies_and_body()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _upstream.Url("/things/42?color=red&size=L"))
        {
            Content = new StringContent("""{"hello":"world"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Custom", "custom-value");
        request.Headers.Add("Cookie", "session=abc");

        using var response = await _client.SendAsync(request);
        var echo = UpstreamRequest.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("POST", echo.Method);
        Assert.Equal("/things/42", echo.Path);
        Assert.Equal("red", echo.Query["color"]);
        Assert.Equal("L", echo.Query["size"]);
        Assert.Equal("custom-value", echo.Headers["x-custom"]);
        Assert.Equal("abc", echo.Cookies["session"]);
        Assert.Equal("""{"hello":"world"}""", echo.Body);
        Assert.Equal(echo, _upstream.Requests.Single() with { Headers = echo.Headers, Query = echo.Query, Cookies = echo.Cookies });
    }

    [Fact]
    public async Task Status_418_answers_418()
    {
        using var response = await _client.GetAsync(_upstream.Url("/status/418"));

        Assert.Equal((HttpStatusCode)418, response.StatusCode);
    }

    [Fact]
    public async Task Echo_header_returns_that_header_value()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, _upstream.Url("/echo-header/Authorization"));
        request.Headers.Add("Authorization", "Bearer s3cret");

        using var response = await _client.SendAsync(request);

        Assert.Equal("Bearer s3cret", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Redirect_and_big_answer_as_asked()
    {
        using var noRedirects = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        using var redirect = await noRedirects.GetAsync(_upstream.Url("/redirect?to=http://127.0.0.1:1/elsewhere"));
        var big = await _client.GetByteArrayAsync(_upstream.Url("/big/200000"));

        Assert.Equal(HttpStatusCode.Found, redirect.StatusCode);
        Assert.Equal("http://127.0.0.1:1/elsewhere", redirect.Headers.Location?.ToString());
        Assert.Equal(200_000, big.Length);
    }

    [Fact]
    public async Task Slow_waits_until_released()
    {
        var slow = _client.GetStringAsync(_upstream.Url("/slow"));
        await _upstream.WaitForRequestAsync(r => r.Path == "/slow");
        Assert.False(slow.IsCompleted);

        _upstream.ReleaseSlowRequests();

        Assert.Equal("slow done", await slow.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Slow_ends_when_the_caller_goes_away()
    {
        using var cancel = new CancellationTokenSource();
        var slow = _client.GetAsync(_upstream.Url("/slow"), cancel.Token);
        await _upstream.WaitForRequestAsync(r => r.Path == "/slow");

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow);
        await Poll.UntilAsync(() => _upstream.SlowRequestsAborted == 1, TimeSpan.FromSeconds(10), "the upstream to see the abort");
    }
}

using Keyway.Api;
using Keyway.Schedules;

namespace Keyway.Tests.Schedules;

/// <summary>Cron and time zones, DST, the misfire policy and backoff: pure functions of a given time.</summary>
public sealed class ScheduleClockTests
{
    private static CompiledSchedule Compile(string cron, string? zone = null, string? misfire = null) =>
        CompiledSchedule.Compile("s", new ScheduleDefinition { Cron = cron, TimeZone = zone, Action = "verify", Misfire = misfire });

    private static DateTimeOffset Utc(int year, int month, int day, int hour, int minute = 0, int second = 0) =>
        new(year, month, day, hour, minute, second, TimeSpan.Zero);

    [Fact]
    public void A_daily_cron_in_a_zone_runs_at_that_zones_local_time_winter_and_summer()
    {
        var schedule = Compile("0 3 * * *", "Europe/Madrid");

        Assert.Equal(Utc(2026, 1, 10, 2), schedule.NextAfter(Utc(2026, 1, 10, 0)));  // CET, UTC+1
        Assert.Equal(Utc(2026, 7, 10, 1), schedule.NextAfter(Utc(2026, 7, 10, 0)));  // CEST, UTC+2
    }

    [Fact]
    public void Across_DST_a_time_that_does_not_exist_runs_once_after_the_gap_and_a_repeated_one_runs_once()
    {
        var schedule = Compile("30 2 * * *", "Europe/Madrid");

        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day and runs at 03:00 CEST (01:00 UTC).
        Assert.Equal(Utc(2026, 3, 29, 1), schedule.NextAfter(Utc(2026, 3, 28, 23)));
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice and runs the first time only (00:30 UTC).
        var first = schedule.NextAfter(Utc(2026, 10, 24, 23));
        Assert.Equal(Utc(2026, 10, 25, 0, 30), first);
        Assert.Equal(Utc(2026, 10, 26, 1, 30), schedule.NextAfter(first!.Value));
    }

    [Fact]
    public void Six_fields_are_seconds_first_and_five_are_minutes_first()
    {
        Assert.Equal(Utc(2026, 1, 1, 0, 0, 5), Compile("*/5 * * * * *").NextAfter(Utc(2026, 1, 1, 0)));
        Assert.Equal(Utc(2026, 1, 1, 0, 5), Compile("*/5 * * * *").NextAfter(Utc(2026, 1, 1, 0)));
    }

    [Fact]
    public void A_bad_cron_an_unknown_zone_and_a_variable_rotation_that_also_names_a_resource_are_field_errors()
    {
        var e = Assert.Throws<KeywayException>(() => CompiledSchedule.Compile("s", new ScheduleDefinition
        {
            Cron = "61 * * * *",
            TimeZone = "Mars/Olympus",
            Action = "rotate",
            Variable = "STRIPE_KEY",
            Resource = "stripe",
            MaxAttempts = 0,
        }));

        Assert.Equal("invalid_config", e.Code);
        var errors = Assert.IsAssignableFrom<IReadOnlyList<FieldError>>(e.Extensions!["errors"]);
        Assert.Equal(["cron", "timeZone", "resource", "maxAttempts"], errors.Select(f => f.Field));
        Assert.Contains("not both", errors.Single(f => f.Field == "resource").Message);
        Assert.Contains("fields", Assert.Throws<KeywayException>(() => Compile("* * *")).Message);
    }

    [Fact]
    public void Each_action_names_its_target_and_nothing_else()
    {
        var e = Assert.Throws<KeywayException>(() => CompiledSchedule.Compile("s", new ScheduleDefinition { Cron = "@daily", Action = "run", Resource = "billing" }));

        var errors = Assert.IsAssignableFrom<IReadOnlyList<FieldError>>(e.Extensions!["errors"]);
        Assert.Equal(["query", "resource"], errors.Select(f => f.Field));
        var missing = Assert.Throws<KeywayException>(() => CompiledSchedule.Compile("s", new ScheduleDefinition { Cron = "@daily" }));
        Assert.Equal("action", Assert.Single(Assert.IsAssignableFrom<IReadOnlyList<FieldError>>(missing.Extensions!["errors"])).Field);
    }

    [Fact]
    public void An_occurrence_up_to_a_minute_late_runs_as_itself()
    {
        var hourly = Compile("0 * * * *");
        var due = ScheduleClock.Decide(hourly, Utc(2026, 5, 1, 9, 0), Utc(2026, 5, 1, 10, 0, 40));

        Assert.Equal(new DueOccurrence(Utc(2026, 5, 1, 10), RunKinds.Cron), due);
        Assert.Null(ScheduleClock.Decide(hourly, Utc(2026, 5, 1, 10), Utc(2026, 5, 1, 10, 59, 59)));
    }

    [Fact]
    public void After_downtime_fireOnce_runs_the_latest_missed_occurrence_once_within_a_day_and_skips_older()
    {
        var hourly = Compile("0 * * * *");

        // Down from 09:30 to 13:20: 10:00, 11:00, 12:00 and 13:00 were missed; one catch-up run, for 13:00.
        Assert.Equal(new DueOccurrence(Utc(2026, 5, 1, 13), RunKinds.CatchUp), ScheduleClock.Decide(hourly, Utc(2026, 5, 1, 9), Utc(2026, 5, 1, 13, 20)));

        // A weekly schedule whose occurrence was missed two days ago: older than the bound, skipped (and recorded as such).
        var weekly = Compile("0 8 * * 1");
        Assert.Equal(new DueOccurrence(Utc(2026, 5, 4, 8), RunKinds.Skipped), ScheduleClock.Decide(weekly, Utc(2026, 4, 27, 8), Utc(2026, 5, 6, 9)));
    }

    [Fact]
    public void After_downtime_skip_records_the_missed_occurrence_as_skipped()
    {
        var hourly = Compile("0 * * * *", misfire: "skip");

        Assert.Equal(new DueOccurrence(Utc(2026, 5, 1, 13), RunKinds.Skipped), ScheduleClock.Decide(hourly, Utc(2026, 5, 1, 9), Utc(2026, 5, 1, 13, 20)));
        // Once recorded, the next one is on time again.
        Assert.Equal(RunKinds.Cron, ScheduleClock.Decide(hourly, Utc(2026, 5, 1, 13), Utc(2026, 5, 1, 14, 0, 1))!.Kind);
    }

    [Fact]
    public void A_second_by_second_cron_after_a_year_down_finds_its_latest_occurrence_without_counting_them_all()
    {
        var everySecond = Compile("* * * * * *");

        Assert.Equal(Utc(2027, 5, 1, 9), ScheduleClock.LatestUpTo(everySecond, Utc(2026, 5, 1, 9), Utc(2027, 5, 1, 9)));
        Assert.Null(ScheduleClock.LatestUpTo(Compile("0 0 1 1 *"), Utc(2026, 1, 2, 0), Utc(2026, 12, 31, 0)));
    }

    [Fact]
    public void Backoff_doubles_from_the_configured_wait_and_is_capped()
    {
        var schedule = CompiledSchedule.Compile("s", new ScheduleDefinition { Cron = "@daily", Action = "verify", RetryBackoffSeconds = 1.5 });

        Assert.Equal(TimeSpan.FromSeconds(1.5), schedule.BackoffBefore(2));
        Assert.Equal(TimeSpan.FromSeconds(3), schedule.BackoffBefore(3));
        Assert.Equal(TimeSpan.FromSeconds(6), schedule.BackoffBefore(4));
        Assert.Equal(TimeSpan.FromHours(1), schedule.BackoffBefore(30));
        Assert.Equal(3, Compile("@daily").MaxAttempts);
    }
}

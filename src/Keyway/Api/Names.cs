using System.Buffers;

namespace Keyway.Api;

/// <summary>The shapes of names Keyway accepts, checked once at the edge with a precise message.</summary>
internal static class Names
{
    private static readonly SearchValues<char> NameChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

    private static readonly SearchValues<char> VariableChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

    /// <summary>Environments, resources, queries: letters, digits, '_', '.', '-'; starts with a letter or digit.</summary>
    public static string? CheckName(string kind, string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return $"The {kind} name is empty.";
        }

        if (name.Length > 100)
        {
            return $"The {kind} name is longer than 100 characters.";
        }

        if (!char.IsAsciiLetterOrDigit(name[0]) || name.AsSpan().ContainsAnyExcept(NameChars))
        {
            return $"The {kind} name '{name}' may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit.";
        }

        return null;
    }

    /// <summary>Variables are referenced as <c>environment.variables.NAME</c>, so they are identifiers.</summary>
    public static string? CheckVariable(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "The variable name is empty.";
        }

        if (name.Length > 128)
        {
            return "The variable name is longer than 128 characters.";
        }

        if (char.IsAsciiDigit(name[0]) || name.AsSpan().ContainsAnyExcept(VariableChars))
        {
            return $"The variable name '{name}' may hold only letters, digits and '_', and must not start with a digit (it is used as environment.variables.{name}).";
        }

        return null;
    }

    public static void Require(string kind, string? name)
    {
        if (CheckName(kind, name) is { } error)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", error);
        }
    }

    public static void RequireVariable(string? name)
    {
        if (CheckVariable(name) is { } error)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", error);
        }
    }
}

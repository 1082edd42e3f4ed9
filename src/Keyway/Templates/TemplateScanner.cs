namespace Keyway.Templates;

/// <summary>
/// Splits template text into literals and <c>{{ }}</c> expressions. The expression scan knows just
/// enough JavaScript to find the right <c>}}</c>: string and template literals (with nested
/// <c>${ }</c>), comments, and balanced braces.
/// </summary>
internal static class TemplateScanner
{
    public static TemplatePart[] Split(string text)
    {
        var first = text.IndexOf("{{", StringComparison.Ordinal);
        if (first < 0)
        {
            return text.Length == 0 ? [] : [new TemplatePart(text, null)];
        }

        var parts = new List<TemplatePart>();
        var literalStart = 0;
        var open = first;
        while (open >= 0)
        {
            var start = open + 2;
            var close = FindClose(text, start);
            if (close < 0)
            {
                throw new TemplateSyntaxException("unclosed '{{' (no matching '}}' outside strings and braces)", open);
            }

            if (open > literalStart)
            {
                parts.Add(new TemplatePart(text[literalStart..open], null));
            }

            var raw = text.AsSpan(start, close - start);
            var trimmed = raw.Trim();
            if (trimmed.IsEmpty)
            {
                throw new TemplateSyntaxException("empty expression in '{{ }}'", open);
            }

            var position = start + (raw.Length - raw.TrimStart().Length);
            parts.Add(new TemplatePart(null, new TemplateExpression(trimmed.ToString(), position)));
            literalStart = close + 2;
            open = text.IndexOf("{{", literalStart, StringComparison.Ordinal);
        }

        if (literalStart < text.Length)
        {
            parts.Add(new TemplatePart(text[literalStart..], null));
        }

        return [.. parts];
    }

    /// <summary>The index of the <c>}}</c> that closes an expression starting at <paramref name="start"/>, or -1.</summary>
    private static int FindClose(string text, int start) => ScanCode(text, start, topLevel: true);

    /// <summary>
    /// Scans code until, at brace depth 0, <c>}}</c> (top level) or <c>}</c> (the end of a
    /// <c>${ }</c> substitution). Returns its index, or -1 when the text ends first.
    /// </summary>
    private static int ScanCode(string text, int i, bool topLevel)
    {
        var depth = 0;
        while (i < text.Length)
        {
            var c = text[i];
            var next = i + 1 < text.Length ? text[i + 1] : '\0';
            switch (c)
            {
                case '"' or '\'':
                    i = SkipString(text, i);
                    if (i < 0)
                    {
                        return -1;
                    }

                    continue;
                case '`':
                    i = SkipTemplateLiteral(text, i);
                    if (i < 0)
                    {
                        return -1;
                    }

                    continue;
                case '/' when next == '/':
                    // A line comment ends at a newline, or at a "}}" on its line: templates are
                    // mostly one line, and "{{ a // why }}" should not swallow the rest of the text.
                    var end = i + 2;
                    while (end < text.Length && text[end] != '\n' && !(topLevel && depth == 0 && IsClose(text, end)))
                    {
                        end++;
                    }

                    i = end;
                    continue;
                case '/' when next == '*':
                    var commentEnd = text.IndexOf("*/", i + 2, StringComparison.Ordinal);
                    if (commentEnd < 0)
                    {
                        return -1;
                    }

                    i = commentEnd + 2;
                    continue;
                case '{':
                    depth++;
                    break;
                case '}':
                    if (depth > 0)
                    {
                        depth--;
                    }
                    else if (!topLevel || next == '}')
                    {
                        return i;
                    }

                    break;
            }

            i++;
        }

        return -1;
    }

    private static bool IsClose(string text, int i) => text[i] == '}' && i + 1 < text.Length && text[i + 1] == '}';

    /// <summary>Returns the index after the closing quote, or -1 for an unterminated string.</summary>
    private static int SkipString(string text, int i)
    {
        var quote = text[i++];
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '\\')
            {
                i += 2;
            }
            else if (c == quote)
            {
                return i + 1;
            }
            else if (c is '\n' or '\r')
            {
                return -1;
            }
            else
            {
                i++;
            }
        }

        return -1;
    }

    private static int SkipTemplateLiteral(string text, int i)
    {
        i++;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '\\')
            {
                i += 2;
            }
            else if (c == '`')
            {
                return i + 1;
            }
            else if (c == '$' && i + 1 < text.Length && text[i + 1] == '{')
            {
                var end = ScanCode(text, i + 2, topLevel: false);
                if (end < 0)
                {
                    return -1;
                }

                i = end + 1;
            }
            else
            {
                i++;
            }
        }

        return -1;
    }
}

using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Reflection;

namespace Keyway.Storage;

/// <summary>
/// Parameters added one at a time, for SQL whose filters are put together at run time (the audit
/// log's filters, the rekey job's key columns). Adding a name twice keeps the second value.
/// </summary>
internal sealed class SqlParameters
{
    private static readonly ConcurrentDictionary<Type, PropertyInfo[]> s_properties = new();

    private readonly List<Parameter> _parameters = [];

    /// <summary>Sets <c>@<paramref name="name"/></c>. The declared type <typeparamref name="T"/> types a NULL (the value's own type when it is <see cref="object"/>).</summary>
    public void Add<T>(string name, T value) => Set(new Parameter(name, value, typeof(T)));

    /// <summary>Sets a parameter for each public property of <paramref name="source"/> (an anonymous object, say), typed as the property is.</summary>
    public void AddProperties(object source)
    {
        foreach (var property in Properties(source.GetType()))
        {
            Set(new Parameter(property.Name, property.GetValue(source), property.PropertyType));
        }
    }

    private void Set(Parameter parameter)
    {
        var name = parameter.Name;
        var index = _parameters.FindIndex(p => string.Equals(p.Name, name, StringComparison.Ordinal));
        if (index >= 0)
        {
            _parameters[index] = parameter;
        }
        else
        {
            _parameters.Add(parameter);
        }
    }

    /// <summary>
    /// Binds the parameters of <paramref name="source"/> (a <see cref="SqlParameters"/>, or any
    /// object's public properties) that <c>command</c>'s SQL names as <c>@name</c>, whole word,
    /// in any case, as Dapper did: the database never sees one it was not asked for.
    /// </summary>
    /// <remarks>
    /// A parameter is sent under the property's name, as Dapper sent it: SQLite matches names exactly,
    /// so the SQL spells them as the property does (Npgsql would match any case).
    /// A NULL is typed by the member's declared type (PostgreSQL must know it for <c>@x IS NULL</c>);
    /// an enum is sent as its integer; a <c>byte[]</c> as a blob. Anything else (a list, a
    /// <see cref="DateTimeOffset"/>: times are stored as Unix milliseconds, see <see cref="Time"/>)
    /// is refused rather than guessed.
    /// </remarks>
    internal static void Bind(DbCommand command, object source)
    {
        var referenced = ReferencedNames(command.CommandText);
        if (referenced.Count == 0)
        {
            return;
        }

        var bound = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (source is SqlParameters list)
        {
            foreach (var (name, value, type) in list._parameters)
            {
                Add(name, value, type);
            }
        }
        else
        {
            foreach (var property in Properties(source.GetType()))
            {
                // Read only when named: the others' getters are never called.
                if (referenced.Contains(property.Name))
                {
                    Add(property.Name, property.GetValue(source), property.PropertyType);
                }
            }
        }

        void Add(string name, object? value, Type type)
        {
            if (!referenced.Contains(name))
            {
                return;
            }

            if (!bound.Add(name))
            {
                // Npgsql matches parameter names without regard to case: one would take the other's value.
                throw new ArgumentException(
                    $"Two parameters are named '{name}' but for case; Npgsql would bind one value to both. Name them apart.", nameof(source));
            }

            command.Parameters.Add(Create(command, name, value, type));
        }
    }

    /// <summary>The names written <c>@name</c> in <paramref name="sql"/>: letters, digits and underscores after the <c>@</c>.</summary>
    internal static HashSet<string> ReferencedNames(string sql)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var at = sql.IndexOf('@', StringComparison.Ordinal);
        while (at >= 0)
        {
            var end = at + 1;
            while (end < sql.Length && (char.IsLetterOrDigit(sql[end]) || sql[end] == '_'))
            {
                end++;
            }

            if (end > at + 1)
            {
                names.Add(sql[(at + 1)..end]);
            }

            at = end < sql.Length ? sql.IndexOf('@', end) : -1;
        }

        return names;
    }

    private static DbParameter Create(DbCommand command, string name, object? value, Type declared)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        var type = declared == typeof(object) ? value?.GetType() : declared;
        if (type is not null)
        {
            var underlying = Nullable.GetUnderlyingType(type) ?? type;
            if (underlying.IsEnum)
            {
                underlying = Enum.GetUnderlyingType(underlying);
                value = value is null ? null : Convert.ChangeType(value, underlying, System.Globalization.CultureInfo.InvariantCulture);
            }

            parameter.DbType = DbTypeOf(underlying) ?? throw new NotSupportedException(
                $"The parameter '{name}' is a {type.Name}, which Keyway does not send to the store. Send a string, a number, a bool or a byte[].");
        }

        parameter.Value = value ?? DBNull.Value;
        return parameter;
    }

    private static DbType? DbTypeOf(Type type) =>
        type == typeof(byte[]) ? DbType.Binary : Type.GetTypeCode(type) switch
        {
            TypeCode.String => DbType.String,
            TypeCode.Boolean => DbType.Boolean,
            TypeCode.Byte => DbType.Byte,
            TypeCode.Int16 => DbType.Int16,
            TypeCode.Int32 => DbType.Int32,
            TypeCode.Int64 => DbType.Int64,
            TypeCode.Single => DbType.Single,
            TypeCode.Double => DbType.Double,
            TypeCode.Decimal => DbType.Decimal,
            _ => null,
        };

    private readonly record struct Parameter(string Name, object? Value, Type Type);

    /// <summary>An object type's public properties that can be read, found once per type.</summary>
    private static PropertyInfo[] Properties(Type type) => s_properties.GetOrAdd(type, static t =>
        [.. t.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetGetMethod() is not null && p.GetIndexParameters().Length == 0)]);
}

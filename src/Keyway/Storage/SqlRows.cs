using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace Keyway.Storage;

/// <summary>
/// Maps result rows to objects, the way Keyway used Dapper to:
/// <list type="bullet">
/// <item>a scalar (a number, a bool, a string, an enum, a <c>byte[]</c>, or a nullable one) is the first column;</item>
/// <item>a value tuple takes the columns in order;</item>
/// <item>a type with a parameterless constructor is made with it, then its settable properties (<c>init</c> ones too) get the columns that name them;</item>
/// <item>any other type (a positional record) is made with the constructor whose parameters all name a column, the longest such.</item>
/// </list>
/// A column names a member exactly, else without regard to case, else without underscores
/// (<c>created_at</c> names <c>CreatedAt</c>); a column that names nothing is ignored. A NULL leaves a
/// property as its initializer set it, and gives a constructor parameter, a tuple item or a scalar its default.
/// </summary>
/// <remarks>
/// Values are converted from what the providers return (SQLite: long, double, string, byte[];
/// Npgsql: typed values) to the member's type: long to int, bool or an enum, int to long, and so on.
/// A failed conversion names the column, the member and both types, never the value, which may be a
/// secret's ciphertext or a token. The reflection is done once per type; a query only looks its
/// columns up in what was found.
/// </remarks>
internal static class SqlRows
{
    private static readonly ConcurrentDictionary<Type, RowPlan> s_plans = new();

    /// <summary>A reader of <typeparamref name="T"/> from the current row of <paramref name="reader"/>, for its columns.</summary>
    public static Func<DbDataReader, T> Reader<T>(DbDataReader reader)
    {
        var read = s_plans.GetOrAdd(typeof(T), RowPlan.Create).Bind(reader);
        return row => (T)read(row)!;
    }

    /// <summary><paramref name="value"/> (an <c>ExecuteScalar</c> result) as <typeparamref name="T"/>; default for none or NULL.</summary>
    public static T? Scalar<T>(object? value) =>
        value is null or DBNull ? default : (T)Convert(value, typeof(T), "The scalar result", member: null)!;

    /// <summary>
    /// <paramref name="value"/>, not NULL, as <paramref name="target"/>. <paramref name="source"/>
    /// (<c>Column 'name'</c>) and <paramref name="member"/> say where it came from and went, for the error.
    /// </summary>
    internal static object? Convert(object value, Type target, string source, string? member)
    {
        var type = Nullable.GetUnderlyingType(target) ?? target;
        if (type.IsInstanceOfType(value))
        {
            return value;
        }

        Exception? failure = null;
        try
        {
            if (type.IsEnum)
            {
                return value is string name ? Enum.Parse(type, name, ignoreCase: true) : Enum.ToObject(type, value);
            }

            if (value is IConvertible && Type.GetTypeCode(type) is not (TypeCode.Object or TypeCode.DBNull or TypeCode.Empty))
            {
                return System.Convert.ChangeType(value, type, CultureInfo.InvariantCulture);
            }
        }
        catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException or ArgumentException)
        {
            failure = e;
        }

        // Neither the value nor the failure's message, which can quote it (a FormatException does), nor the
        // failure itself as the inner exception: the value may be a secret.
        throw new InvalidCastException(
            $"{source} holds a {value.GetType().Name}, which cannot be read as {Name(target)}" +
            (member is null ? "" : $" for {member}") + (failure is null ? "." : $" ({failure.GetType().Name})."));
    }

    /// <summary>A type's name as C# writes it, for errors: <c>Int64?</c>, <c>(String, Int64)</c>.</summary>
    internal static string Name(Type type) =>
        Nullable.GetUnderlyingType(type) is { } underlying ? Name(underlying) + "?"
        : IsTuple(type) ? "(" + string.Join(", ", type.GetGenericArguments().Select(Name)) + ")"
        : type.Name;

    private static bool IsTuple(Type type) => type.IsValueType && type.IsGenericType && typeof(ITuple).IsAssignableFrom(type);

    private static object? DefaultOf(Type type) => type.IsValueType && Nullable.GetUnderlyingType(type) is null ? Activator.CreateInstance(type) : null;

    private static string[] ColumnNames(DbDataReader reader)
    {
        var names = new string[reader.FieldCount];
        for (var i = 0; i < names.Length; i++)
        {
            names[i] = reader.GetName(i);
        }

        return names;
    }

    /// <summary>How a type is made from a row, found once per type; <see cref="Bind"/> fits it to a query's columns.</summary>
    private abstract class RowPlan
    {
        public abstract Func<DbDataReader, object?> Bind(DbDataReader reader);

        public static RowPlan Create(Type type)
        {
            var underlying = Nullable.GetUnderlyingType(type) ?? type;
            if (underlying.IsPrimitive || underlying.IsEnum || underlying == typeof(string) || underlying == typeof(byte[]) || underlying == typeof(object) ||
                underlying == typeof(decimal) || underlying == typeof(Guid) || underlying == typeof(DateTime) || underlying == typeof(DateTimeOffset))
            {
                return new ScalarPlan(type);
            }

            if (IsTuple(type))
            {
                return new TuplePlan(type);
            }

            // A struct always has a parameterless constructor.
            return type.IsValueType || type.GetConstructor(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, Type.EmptyTypes) is not null
                ? new PropertyPlan(type)
                : new ConstructorPlan(type);
        }
    }

    private sealed class ScalarPlan(Type type) : RowPlan
    {
        private readonly object? _default = DefaultOf(type);

        public override Func<DbDataReader, object?> Bind(DbDataReader reader)
        {
            var column = $"Column '{reader.GetName(0)}'";
            return row => row.GetValue(0) is { } value and not DBNull ? Convert(value, type, column, member: null) : _default;
        }
    }

    private sealed class TuplePlan : RowPlan
    {
        private readonly Type _type;
        private readonly Type[] _items;
        private readonly object?[] _defaults;
        private readonly ConstructorInfo _constructor;

        public TuplePlan(Type type)
        {
            _type = type;
            _items = type.GetGenericArguments();
            if (_items.Length > 7)
            {
                throw new NotSupportedException($"{Name(type)} has more than seven items; read a class or a record instead.");
            }

            _defaults = [.. _items.Select(DefaultOf)];
            _constructor = type.GetConstructor(_items)!;
        }

        public override Func<DbDataReader, object?> Bind(DbDataReader reader)
        {
            var columns = ColumnNames(reader);
            if (columns.Length < _items.Length)
            {
                throw new InvalidOperationException($"The query returns {columns.Length} columns; {Name(_type)} takes {_items.Length}.");
            }

            return row =>
            {
                var items = new object?[_items.Length];
                for (var i = 0; i < items.Length; i++)
                {
                    items[i] = row.GetValue(i) is { } value and not DBNull
                        ? Convert(value, _items[i], $"Column '{columns[i]}'", $"item {i + 1} of {Name(_type)}")
                        : _defaults[i];
                }

                return _constructor.Invoke(BindingFlags.DoNotWrapExceptions, binder: null, items, culture: null);
            };
        }
    }

    private sealed class PropertyPlan : RowPlan
    {
        private readonly Type _type;
        private readonly Dictionary<string, PropertyInfo> _exact = new(StringComparer.Ordinal);
        private readonly Dictionary<string, PropertyInfo> _anyCase = new(StringComparer.OrdinalIgnoreCase);

        public PropertyPlan(Type type)
        {
            _type = type;
            foreach (var property in type.GetProperties(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                if (property.GetSetMethod(nonPublic: true) is not null && property.GetIndexParameters().Length == 0)
                {
                    _exact.TryAdd(property.Name, property);
                    _anyCase.TryAdd(property.Name, property);
                }
            }
        }

        public override Func<DbDataReader, object?> Bind(DbDataReader reader)
        {
            var columns = ColumnNames(reader);
            var mapped = new List<(int Ordinal, PropertyInfo Property)>(columns.Length);
            for (var i = 0; i < columns.Length; i++)
            {
                if (Find(columns[i]) is { } property)
                {
                    mapped.Add((i, property));
                }
            }

            return row =>
            {
                var target = Activator.CreateInstance(_type, nonPublic: true)!;
                foreach (var (ordinal, property) in mapped)
                {
                    if (row.GetValue(ordinal) is { } value and not DBNull)
                    {
                        property.SetValue(
                            target, Convert(value, property.PropertyType, $"Column '{columns[ordinal]}'", $"{_type.Name}.{property.Name}"),
                            BindingFlags.DoNotWrapExceptions, binder: null, index: null, culture: null);
                    }
                }

                return target;
            };
        }

        private PropertyInfo? Find(string column)
        {
            if (_exact.TryGetValue(column, out var property) || _anyCase.TryGetValue(column, out property))
            {
                return property;
            }

            var bare = column.Replace("_", "", StringComparison.Ordinal);
            return bare.Length != column.Length && (_exact.TryGetValue(bare, out property) || _anyCase.TryGetValue(bare, out property)) ? property : null;
        }
    }

    private sealed class ConstructorPlan : RowPlan
    {
        private readonly Type _type;
        private readonly Constructor[] _constructors;

        public ConstructorPlan(Type type)
        {
            _type = type;
            _constructors =
            [
                .. type.GetConstructors(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                    .Select(c => new Constructor(c, c.GetParameters()))
                    // Not a record's copy constructor.
                    .Where(c => c.Parameters.Length > 0 && !(c.Parameters.Length == 1 && c.Parameters[0].ParameterType == type))
                    .OrderByDescending(c => c.Parameters.Length),
            ];
        }

        public override Func<DbDataReader, object?> Bind(DbDataReader reader)
        {
            var columns = ColumnNames(reader);
            foreach (var constructor in _constructors)
            {
                if (constructor.Match(columns) is { } ordinals)
                {
                    return row => constructor.Invoke(row, ordinals, columns, _type);
                }
            }

            throw new InvalidOperationException(
                $"{_type.Name} has no parameterless constructor, and no constructor whose parameters all name one of the columns ({string.Join(", ", columns)}).");
        }

        private sealed class Constructor(ConstructorInfo constructor, ParameterInfo[] parameters)
        {
            private readonly object?[] _defaults = [.. parameters.Select(p => DefaultOf(p.ParameterType))];

            public ParameterInfo[] Parameters { get; } = parameters;

            /// <summary>The ordinal of the column each parameter takes; null when one names no column.</summary>
            public int[]? Match(string[] columns)
            {
                var ordinals = new int[Parameters.Length];
                for (var p = 0; p < Parameters.Length; p++)
                {
                    var name = Parameters[p].Name ?? "";
                    var ordinal = Find(columns, c => string.Equals(c, name, StringComparison.Ordinal));
                    if (ordinal < 0)
                    {
                        ordinal = Find(columns, c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));
                    }

                    if (ordinal < 0)
                    {
                        ordinal = Find(columns, c => string.Equals(c.Replace("_", "", StringComparison.Ordinal), name, StringComparison.OrdinalIgnoreCase));
                    }

                    if (ordinal < 0)
                    {
                        return null;
                    }

                    ordinals[p] = ordinal;
                }

                return ordinals;
            }

            public object Invoke(DbDataReader row, int[] ordinals, string[] columns, Type type)
            {
                var arguments = new object?[Parameters.Length];
                for (var p = 0; p < arguments.Length; p++)
                {
                    arguments[p] = row.GetValue(ordinals[p]) is { } value and not DBNull
                        ? Convert(value, Parameters[p].ParameterType, $"Column '{columns[ordinals[p]]}'", $"the parameter '{Parameters[p].Name}' of {type.Name}")
                        : _defaults[p];
                }

                return constructor.Invoke(BindingFlags.DoNotWrapExceptions, binder: null, arguments, culture: null);
            }

            private static int Find(string[] columns, Predicate<string> matches) => Array.FindIndex(columns, matches);
        }
    }
}

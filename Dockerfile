# Keyway's container image: docker build -t keyway .
# Runs as the image's non-root user (app, uid 1654) with a read-only root filesystem; the store
# and master.key live on the volume /var/lib/keyway (or the store on PostgreSQL, KEYWAY_DATABASE_URL).
# docs/deploy.md shows it with docker run, docker compose (PostgreSQL, three replicas) and Kubernetes.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files only: the layer is reused until a dependency changes.
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Keyway/Keyway.csproj src/Keyway/
RUN dotnet restore src/Keyway/Keyway.csproj
COPY src/ src/
ARG VERSION=0.9.0-dev
RUN dotnet publish src/Keyway/Keyway.csproj -c Release --no-restore -p:Version=$VERSION -o /app \
    && rm -f /app/*.pdb /app/*.xml

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
LABEL org.opencontainers.image.title="Keyway" \
      org.opencontainers.image.description="Credentials for internal tools, attached server-side" \
      org.opencontainers.image.source="https://github.com/keyway-dev/keyway"
COPY --from=build /app /app
RUN ln -s /app/keyway /usr/local/bin/keyway \
    && install -d -m 0700 -o 1654 -g 1654 /var/lib/keyway
ENV KEYWAY_URLS=http://0.0.0.0:7510 \
    KEYWAY_DATA_DIR=/var/lib/keyway \
    KEYWAY_LOG_FORMAT=json \
    KEYWAY_ADMIN_CREDENTIALS_FILE=/var/lib/keyway/initial-admin.txt \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
USER 1654:1654
WORKDIR /var/lib/keyway
VOLUME ["/var/lib/keyway"]
EXPOSE 7510
# Healthy while /readyz answers 200 (Keyway serves and its store answers).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/keyway", "operator", "wait-ready", "--timeout", "4"]
ENTRYPOINT ["/app/keyway"]
CMD ["serve"]

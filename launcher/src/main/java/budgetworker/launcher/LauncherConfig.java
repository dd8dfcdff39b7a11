package budgetworker.launcher;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

/**
 * Where the launcher's DynamoDB, DynamoDB Streams and KCL tables are, resolved from the
 * properties file and the environment by the one rule the Python worker applies too
 * ({@code worker/config.py}, {@code KclSettings.resolve}); a test runs both over the same cases.
 *
 * <p>Pure on purpose (no KCL, no AWS SDK): it compiles and runs with a bare JDK, so the rule can
 * be checked where Maven cannot download anything. The rule:
 * <ul>
 *   <li>DynamoDB endpoint: {@code AWS_ENDPOINT_URL_DYNAMODB}, then {@code AWS_ENDPOINT_URL},
 *       then {@code dynamoDbEndpoint}; none means AWS.</li>
 *   <li>Streams endpoint: {@code AWS_ENDPOINT_URL_DYNAMODB_STREAMS}, then
 *       {@code AWS_ENDPOINT_URL}, then {@code dynamoDbStreamsEndpoint}, then the DynamoDB
 *       endpoint (DynamoDB Local serves both on one port).</li>
 *   <li>Region: {@code AWS_REGION}, then {@code AWS_DEFAULT_REGION}, then {@code regionName},
 *       then us-east-1.</li>
 *   <li>Tables: {@code BUDGET_EVENTS_TABLE} then {@code eventsTableName} (budget-events);
 *       {@code BUDGET_LEASE_TABLE} then {@code tableName} (budget-worker);
 *       {@code BUDGET_STREAM_ARN} then {@code dynamoDbStreamArn} (none: the events table's
 *       latest stream).</li>
 *   <li>Application name: the lease table's name. KCL 3 names its coordinator-state and
 *       worker-metrics tables {@code <applicationName>-CoordinatorState} and
 *       {@code <applicationName>-WorkerMetricStats}: deriving the name from the lease table
 *       gives every deployment with its own lease table its own leader lock. An explicit
 *       {@code BUDGET_KCL_APPLICATION_NAME} or {@code applicationName} must equal the lease
 *       table, else the configuration is refused.</li>
 * </ul>
 * Blank values count as absent.
 */
public final class LauncherConfig {
    public static final String DEFAULT_REGION = "us-east-1";
    public static final String DEFAULT_EVENTS_TABLE = "budget-events";
    public static final String DEFAULT_LEASE_TABLE = "budget-worker";
    static final String COORDINATOR_STATE_SUFFIX = "-CoordinatorState";
    static final String WORKER_METRICS_SUFFIX = "-WorkerMetricStats";

    /** The configuration cannot run safely; the message says what to change. */
    public static final class ConfigurationException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ConfigurationException(String message) {
            super(message);
        }
    }

    private final String region;
    private final String dynamoDbEndpoint;
    private final String streamsEndpoint;
    private final String eventsTable;
    private final String leaseTable;
    private final String streamArn;
    private final String applicationName;

    private LauncherConfig(String region, String dynamoDbEndpoint, String streamsEndpoint,
            String eventsTable, String leaseTable, String streamArn, String applicationName) {
        this.region = region;
        this.dynamoDbEndpoint = dynamoDbEndpoint;
        this.streamsEndpoint = streamsEndpoint;
        this.eventsTable = eventsTable;
        this.leaseTable = leaseTable;
        this.streamArn = streamArn;
        this.applicationName = applicationName;
    }

    public static LauncherConfig resolve(Properties properties, Map<String, String> env) {
        String region = first(env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION"),
                properties.getProperty("regionName"), DEFAULT_REGION);
        String generic = env.get("AWS_ENDPOINT_URL");
        String dynamoDb = first(env.get("AWS_ENDPOINT_URL_DYNAMODB"), generic,
                properties.getProperty("dynamoDbEndpoint"), null);
        String streams = first(env.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"), generic,
                properties.getProperty("dynamoDbStreamsEndpoint"), dynamoDb);
        String events = first(env.get("BUDGET_EVENTS_TABLE"), properties.getProperty("eventsTableName"),
                DEFAULT_EVENTS_TABLE, null);
        String lease = first(env.get("BUDGET_LEASE_TABLE"), properties.getProperty("tableName"),
                DEFAULT_LEASE_TABLE, null);
        String arn = first(env.get("BUDGET_STREAM_ARN"), properties.getProperty("dynamoDbStreamArn"),
                null, null);
        String fromEnv = blankToNull(env.get("BUDGET_KCL_APPLICATION_NAME"));
        String fromFile = blankToNull(properties.getProperty("applicationName"));
        String explicit = fromEnv != null ? fromEnv : fromFile;
        if (explicit != null && !explicit.equals(lease)) {
            String source = fromEnv != null ? "BUDGET_KCL_APPLICATION_NAME" : "applicationName (properties)";
            throw new ConfigurationException("KCL application name " + explicit + " (" + source
                    + ") differs from the lease table " + lease + ": KCL 3 names its leader-lock and"
                    + " worker-metrics tables after the application, so deployments with their own"
                    + " lease tables would share them; unset " + source
                    + " (it is derived from the lease table) or make it equal BUDGET_LEASE_TABLE");
        }
        String application = lease;
        checkNotOverridden(properties, "coordinatorStateTableName", application + COORDINATOR_STATE_SUFFIX);
        checkNotOverridden(properties, "workerMetricsTableName", application + WORKER_METRICS_SUFFIX);
        return new LauncherConfig(region, dynamoDb, streams, events, lease, arn, application);
    }

    /** The launcher derives these two names; a different one in the file would be ignored. */
    private static void checkNotOverridden(Properties properties, String key, String derived) {
        String value = blankToNull(properties.getProperty(key));
        if (value != null && !value.equals(derived)) {
            throw new ConfigurationException(key + " = " + value + " in the properties file: this"
                    + " launcher names that table " + derived + " (after the lease table); remove the key");
        }
    }

    public static LauncherConfig resolve(String propertiesFile, Map<String, String> env) throws IOException {
        return resolve(load(propertiesFile), env);
    }

    public static Properties load(String propertiesFile) throws IOException {
        Properties properties = new Properties();
        try (InputStream in = new FileInputStream(propertiesFile)) {
            properties.load(in);
        }
        return properties;
    }

    public String region() {
        return region;
    }

    /** Null: the AWS endpoint of the region. */
    public String dynamoDbEndpoint() {
        return dynamoDbEndpoint;
    }

    /** Null: the AWS endpoint of the region. */
    public String streamsEndpoint() {
        return streamsEndpoint;
    }

    public String eventsTable() {
        return eventsTable;
    }

    public String leaseTable() {
        return leaseTable;
    }

    /** Null: the events table's latest stream. */
    public String streamArn() {
        return streamArn;
    }

    public String applicationName() {
        return applicationName;
    }

    public String coordinatorStateTable() {
        return applicationName + COORDINATOR_STATE_SUFFIX;
    }

    public String workerMetricsTable() {
        return applicationName + WORKER_METRICS_SUFFIX;
    }

    /** The resolved settings as one JSON object (keys shared with the Python side's test). */
    public String toJson() {
        Map<String, String> fields = new LinkedHashMap<>();
        fields.put("region", region);
        fields.put("dynamodb_endpoint", dynamoDbEndpoint);
        fields.put("streams_endpoint", streamsEndpoint);
        fields.put("events_table", eventsTable);
        fields.put("lease_table", leaseTable);
        fields.put("stream_arn", streamArn);
        fields.put("application_name", applicationName);
        fields.put("coordinator_state_table", coordinatorStateTable());
        fields.put("worker_metrics_table", workerMetricsTable());
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, String> field : fields.entrySet()) {
            if (out.length() > 1) {
                out.append(", ");
            }
            out.append(quote(field.getKey())).append(": ");
            out.append(field.getValue() == null ? "null" : quote(field.getValue()));
        }
        return out.append('}').toString();
    }

    /**
     * {@code --print-resolved --properties-file FILE}: print the resolution as JSON (exit 0), or
     * the reason it is refused (exit 2). Used by the tests and by operators checking a set-up.
     */
    public static void main(String[] args) throws IOException {
        String file = null;
        boolean print = false;
        for (int i = 0; i < args.length; i++) {
            if ("--print-resolved".equals(args[i])) {
                print = true;
            } else if ("--properties-file".equals(args[i]) && i + 1 < args.length) {
                file = args[++i];
            }
        }
        if (!print || file == null) {
            System.err.println("usage: LauncherConfig --print-resolved --properties-file FILE");
            System.exit(2);
        }
        try {
            System.out.println(resolve(file, System.getenv()).toJson());
        } catch (ConfigurationException e) {
            System.err.println("budget-worker launcher: " + e.getMessage());
            System.exit(2);
        }
    }

    private static String first(String a, String b, String c, String fallback) {
        for (String value : new String[] {a, b, c}) {
            String v = blankToNull(value);
            if (v != null) {
                return v;
            }
        }
        return fallback;
    }

    private static String blankToNull(String value) {
        return value == null || value.isBlank() ? null : value.trim();
    }

    private static String quote(String value) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}

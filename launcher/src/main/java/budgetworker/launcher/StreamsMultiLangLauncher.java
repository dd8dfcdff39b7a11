package budgetworker.launcher;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import com.amazonaws.services.dynamodbv2.streamsadapter.AmazonDynamoDBStreamsAdapterClient;
import com.amazonaws.services.dynamodbv2.streamsadapter.StreamsSchedulerFactory;
import com.amazonaws.services.dynamodbv2.streamsadapter.polling.DynamoDBStreamsPollingConfig;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClientBuilder;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClientBuilder;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbClientBuilder;
import software.amazon.awssdk.services.dynamodb.model.TableDescription;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClient;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClientBuilder;
import software.amazon.kinesis.checkpoint.CheckpointConfig;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.CoordinatorConfig;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.lifecycle.LifecycleConfig;
import software.amazon.kinesis.metrics.MetricsConfig;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.multilang.MultiLangDaemonConfig;
import software.amazon.kinesis.multilang.config.ConfigurationSettableUtils;
import software.amazon.kinesis.multilang.config.MultiLangDaemonConfiguration;
import software.amazon.kinesis.processor.ProcessorConfig;
import software.amazon.kinesis.processor.ShardRecordProcessorFactory;
import software.amazon.kinesis.processor.StreamTracker;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * Runs the KCL 3.x MultiLangDaemon's record processors (child processes speaking the MultiLang
 * protocol: `budget-worker kcl-processor`) on a DynamoDB stream through the DynamoDB Streams
 * Kinesis Adapter 2.x.
 *
 * <p>The MultiLangDaemon's own configurator parses the properties file and builds the record
 * processor factory; this class only swaps the Kinesis plumbing for the adapter's
 * ({@link StreamsSchedulerFactory}). Properties it reads itself (environment variables win):
 * <ul>
 *   <li>{@code eventsTableName} / {@code BUDGET_EVENTS_TABLE}: the stream is that table's
 *       latest stream, unless {@code dynamoDbStreamArn} / {@code BUDGET_STREAM_ARN} names one;</li>
 *   <li>{@code tableName} / {@code BUDGET_LEASE_TABLE}: the lease table (KCL default: the
 *       application name);</li>
 *   <li>{@code regionName} / {@code AWS_REGION};</li>
 *   <li>{@code dynamoDbEndpoint}, {@code dynamoDbStreamsEndpoint} /
 *       {@code AWS_ENDPOINT_URL_DYNAMODB}, {@code AWS_ENDPOINT_URL_DYNAMODB_STREAMS},
 *       {@code AWS_ENDPOINT_URL} (DynamoDB Local);</li>
 *   <li>{@code metricsLevel}: NONE disables CloudWatch metrics (DynamoDB Local has none).</li>
 * </ul>
 */
public final class StreamsMultiLangLauncher {
    private static final long SHUTDOWN_GRACE_MILLIS = 60_000L;

    private StreamsMultiLangLauncher() {}

    public static void main(String[] args) throws Exception {
        String propertiesFile = propertiesFile(args);
        Properties properties = new Properties();
        try (InputStream in = new FileInputStream(propertiesFile)) {
            properties.load(in);
        }
        MultiLangDaemonConfig daemonConfig = new MultiLangDaemonConfig(propertiesFile);
        MultiLangDaemonConfiguration configuration = daemonConfig.getMultiLangDaemonConfiguration();

        Region region = Region.of(setting(properties, "regionName", "AWS_REGION", "us-east-1"));
        String generic = System.getenv("AWS_ENDPOINT_URL");
        String ddbEndpoint = setting(properties, "dynamoDbEndpoint", "AWS_ENDPOINT_URL_DYNAMODB", generic);
        String streamsEndpoint = setting(properties, "dynamoDbStreamsEndpoint",
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", ddbEndpoint);

        DynamoDbStreamsClientBuilder streamsBuilder = DynamoDbStreamsClient.builder().region(region);
        DynamoDbAsyncClientBuilder dynamoBuilder = DynamoDbAsyncClient.builder().region(region);
        DynamoDbClientBuilder describeBuilder = DynamoDbClient.builder().region(region);
        if (streamsEndpoint != null) {
            streamsBuilder.endpointOverride(URI.create(streamsEndpoint));
        }
        if (ddbEndpoint != null) {
            dynamoBuilder.endpointOverride(URI.create(ddbEndpoint));
            describeBuilder.endpointOverride(URI.create(ddbEndpoint));
        }
        CloudWatchAsyncClientBuilder cloudWatchBuilder = CloudWatchAsyncClient.builder().region(region);

        String streamArn = setting(properties, "dynamoDbStreamArn", "BUDGET_STREAM_ARN", null);
        if (streamArn == null) {
            String eventsTable = setting(properties, "eventsTableName", "BUDGET_EVENTS_TABLE", "budget-events");
            TableDescription table;
            try (DynamoDbClient describe = describeBuilder.build()) {
                table = describe.describeTable(r -> r.tableName(eventsTable)).table();
            }
            boolean enabled = table.streamSpecification() != null
                    && Boolean.TRUE.equals(table.streamSpecification().streamEnabled());
            streamArn = table.latestStreamArn();
            if (!enabled || streamArn == null) {
                throw new IllegalStateException("table " + eventsTable + " has no stream enabled");
            }
        }
        // KCL 3 names its coordinator-state and worker-metrics tables after the application:
        // separate deployments need separate application names, not only lease tables.
        String applicationName = setting(properties, "applicationName", "BUDGET_KCL_APPLICATION_NAME",
                configuration.getApplicationName());

        AmazonDynamoDBStreamsAdapterClient adapterClient =
                new AmazonDynamoDBStreamsAdapterClient(streamsBuilder.build(), region);
        InitialPositionInStream initial = configuration.getInitialPositionInStream() != null
                ? configuration.getInitialPositionInStream()
                : InitialPositionInStream.TRIM_HORIZON;
        StreamTracker tracker = StreamsSchedulerFactory.createSingleStreamTracker(
                streamArn, InitialPositionInStreamExtended.newInitialPosition(initial));

        ShardRecordProcessorFactory factory = () ->
                new MultiLangStreamsProcessor(daemonConfig.getRecordProcessorFactory().shardRecordProcessor());
        ConfigsBuilder configs = new ConfigsBuilder(
                tracker,
                applicationName,
                adapterClient,
                dynamoBuilder.build(),
                cloudWatchBuilder.build(),
                configuration.getWorkerIdentifier(),
                factory);
        // Apply every KCL setting of the properties file the way the MultiLangDaemon does
        // (its own resolvedConfiguration() is package-private): first the ConfigsBuilder-level
        // ones, then each config object, then the polling settings.
        Map<Class<?>, Object> configObjects = new HashMap<>();
        configObjects.put(ConfigsBuilder.class, configs);
        ConfigurationSettableUtils.resolveFields(configuration, configObjects,
                Set.of(ConfigsBuilder.class), Set.of(PollingConfig.class));
        String leaseTable = setting(properties, "tableName", "BUDGET_LEASE_TABLE", null);
        if (leaseTable != null) {
            configs.tableName(leaseTable);
        }
        CheckpointConfig checkpoint = configs.checkpointConfig();
        CoordinatorConfig coordinator = configs.coordinatorConfig();
        LeaseManagementConfig leaseManagement = configs.leaseManagementConfig();
        LifecycleConfig lifecycle = configs.lifecycleConfig();
        MetricsConfig metrics = configs.metricsConfig();
        ProcessorConfig processor = configs.processorConfig();
        RetrievalConfig retrieval = configs.retrievalConfig();
        for (Object config : List.of(checkpoint, coordinator, leaseManagement, lifecycle, metrics,
                processor, retrieval)) {
            configObjects.put(config.getClass(), config);
        }
        ConfigurationSettableUtils.resolveFields(configuration, configObjects, null,
                Set.of(ConfigsBuilder.class, PollingConfig.class));
        DynamoDBStreamsPollingConfig polling = new DynamoDBStreamsPollingConfig(adapterClient);
        ConfigurationSettableUtils.resolveFields(configuration.getPollingConfig(),
                Map.of(PollingConfig.class, polling), null, null);
        retrieval.retrievalSpecificConfig(polling);
        if ("NONE".equalsIgnoreCase(properties.getProperty("metricsLevel", "DETAILED").trim())) {
            metrics.metricsFactory(new NullMetricsFactory()).metricsLevel(MetricsLevel.NONE);
        }

        Scheduler scheduler = StreamsSchedulerFactory.createScheduler(
                checkpoint, coordinator, leaseManagement, lifecycle, metrics, processor, retrieval,
                adapterClient);

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                // shutdownRequested reaches every child: each takes a last checkpoint.
                scheduler.startGracefulShutdown().get(SHUTDOWN_GRACE_MILLIS, TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                System.err.println("graceful shutdown did not complete: " + e);
            }
        }, "graceful-shutdown"));
        System.err.println("budget-worker launcher: application " + applicationName
                + ", stream " + streamArn + ", worker " + configuration.getWorkerIdentifier());
        scheduler.run();
    }

    private static String propertiesFile(String[] args) throws IOException {
        for (int i = 0; i < args.length; i++) {
            if (("--properties-file".equals(args[i]) || "-p".equals(args[i])) && i + 1 < args.length) {
                return args[i + 1];
            }
        }
        if (args.length == 1) {
            return args[0];
        }
        throw new IOException("usage: budget-worker-launcher --properties-file FILE");
    }

    private static String setting(Properties properties, String key, String env, String fallback) {
        String fromEnv = env == null ? null : System.getenv(env);
        if (fromEnv != null && !fromEnv.isBlank()) {
            return fromEnv;
        }
        String value = properties.getProperty(key);
        return value == null || value.isBlank() ? fallback : value.trim();
    }
}

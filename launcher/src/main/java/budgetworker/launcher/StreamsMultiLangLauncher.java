package budgetworker.launcher;

import java.io.IOException;
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
import software.amazon.kinesis.multilang.config.KinesisClientLibConfigurator;
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
 * ({@link StreamsSchedulerFactory}). Endpoints, region, tables, stream and application name
 * come from {@link LauncherConfig} (environment first, then the file; the Python worker applies
 * the same rule); {@code metricsLevel = NONE} disables CloudWatch metrics (DynamoDB Local has
 * none).
 */
public final class StreamsMultiLangLauncher {
    private static final long SHUTDOWN_GRACE_MILLIS = 60_000L;

    private StreamsMultiLangLauncher() {}

    public static void main(String[] args) throws Exception {
        String propertiesFile = propertiesFile(args);
        Properties properties = LauncherConfig.load(propertiesFile);
        final LauncherConfig resolved = resolveOrExit(properties);
        // The MultiLangDaemon's configurator requires an application name: hand it the derived
        // one (and the resolved lease table), whatever the file says.
        KinesisClientLibConfigurator configurator = new KinesisClientLibConfigurator() {
            @Override
            public MultiLangDaemonConfiguration getConfiguration(Properties loaded) {
                loaded.setProperty("applicationName", resolved.applicationName());
                loaded.setProperty("tableName", resolved.leaseTable());
                return super.getConfiguration(loaded);
            }
        };
        MultiLangDaemonConfig daemonConfig = new MultiLangDaemonConfig(
                propertiesFile, Thread.currentThread().getContextClassLoader(), configurator);
        MultiLangDaemonConfiguration configuration = daemonConfig.getMultiLangDaemonConfiguration();

        Region region = Region.of(resolved.region());
        String ddbEndpoint = resolved.dynamoDbEndpoint();
        String streamsEndpoint = resolved.streamsEndpoint();

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

        String streamArn = resolved.streamArn();
        if (streamArn == null) {
            String eventsTable = resolved.eventsTable();
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
        // KCL 3 names its coordinator-state (leader lock) and worker-metrics tables after the
        // application: derived from the lease table, so deployments cannot share them.
        String applicationName = resolved.applicationName();

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
        configs.tableName(resolved.leaseTable());
        CheckpointConfig checkpoint = configs.checkpointConfig();
        CoordinatorConfig coordinator = configs.coordinatorConfig();
        LeaseManagementConfig leaseManagement = configs.leaseManagementConfig();
        LifecycleConfig lifecycle = configs.lifecycleConfig();
        MetricsConfig metrics = configs.metricsConfig();
        ProcessorConfig processor = configs.processorConfig();
        RetrievalConfig retrieval = configs.retrievalConfig();
        // KCL's own defaults, made explicit: never another deployment's leader lock or metrics.
        coordinator.coordinatorStateTableConfig().tableName(resolved.coordinatorStateTable());
        leaseManagement.workerUtilizationAwareAssignmentConfig().workerMetricsTableConfig()
                .tableName(resolved.workerMetricsTable());
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
                + " (lease table " + resolved.leaseTable() + ", " + resolved.coordinatorStateTable()
                + ", " + resolved.workerMetricsTable() + "), stream " + streamArn
                + ", worker " + configuration.getWorkerIdentifier());
        scheduler.run();
    }

    /** A refused configuration exits 2 (invalid input) with its reason, before touching AWS. */
    private static LauncherConfig resolveOrExit(Properties properties) {
        try {
            return LauncherConfig.resolve(properties, System.getenv());
        } catch (LauncherConfig.ConfigurationException e) {
            System.err.println("budget-worker launcher: " + e.getMessage());
            System.exit(2);
            throw e;
        }
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
}

package budgetworker.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Properties;

import org.junit.jupiter.api.Test;

/** The launcher's resolution rule (the Python side's tests check both sides agree on it). */
class LauncherConfigTest {
    private static Properties localFile() {
        Properties p = new Properties();
        p.setProperty("regionName", "us-east-1");
        p.setProperty("dynamoDbEndpoint", "http://127.0.0.1:8000");
        p.setProperty("dynamoDbStreamsEndpoint", "http://127.0.0.1:8000");
        p.setProperty("eventsTableName", "budget-events");
        p.setProperty("tableName", "budget-worker");
        return p;
    }

    @Test
    void theGenericEndpointVariableWinsOverTheFile() {
        LauncherConfig c = LauncherConfig.resolve(localFile(), Map.of("AWS_ENDPOINT_URL", "http://ddb:9000"));
        assertEquals("http://ddb:9000", c.dynamoDbEndpoint());
        assertEquals("http://ddb:9000", c.streamsEndpoint());
    }

    @Test
    void serviceSpecificVariablesWinOverTheGenericOne() {
        LauncherConfig c = LauncherConfig.resolve(localFile(), Map.of(
                "AWS_ENDPOINT_URL", "http://generic:1",
                "AWS_ENDPOINT_URL_DYNAMODB", "http://ddb:2",
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://streams:3"));
        assertEquals("http://ddb:2", c.dynamoDbEndpoint());
        assertEquals("http://streams:3", c.streamsEndpoint());
    }

    @Test
    void theFileAppliesWhenTheEnvironmentIsSilentAndNothingMeansAws() {
        LauncherConfig local = LauncherConfig.resolve(localFile(), Map.of());
        assertEquals("http://127.0.0.1:8000", local.dynamoDbEndpoint());
        LauncherConfig aws = LauncherConfig.resolve(new Properties(), Map.of("AWS_DEFAULT_REGION", "eu-west-1"));
        assertNull(aws.dynamoDbEndpoint());
        assertNull(aws.streamsEndpoint());
        assertEquals("eu-west-1", aws.region());
        assertEquals("budget-worker", aws.leaseTable());
        assertEquals("budget-events", aws.eventsTable());
    }

    @Test
    void regionAndTablesFromTheEnvironmentFirst() {
        LauncherConfig c = LauncherConfig.resolve(localFile(), Map.of(
                "AWS_REGION", "ap-south-1", "AWS_DEFAULT_REGION", "eu-west-1",
                "BUDGET_EVENTS_TABLE", "team-b-events", "BUDGET_LEASE_TABLE", "team-b-leases"));
        assertEquals("ap-south-1", c.region());
        assertEquals("team-b-events", c.eventsTable());
        assertEquals("team-b-leases", c.leaseTable());
    }

    @Test
    void twoDeploymentsGetTheirOwnKclTables() {
        LauncherConfig a = LauncherConfig.resolve(localFile(), Map.of("BUDGET_LEASE_TABLE", "team-a-leases"));
        LauncherConfig b = LauncherConfig.resolve(localFile(), Map.of("BUDGET_LEASE_TABLE", "team-b-leases"));
        assertEquals("team-a-leases", a.applicationName());
        assertEquals("team-a-leases-CoordinatorState", a.coordinatorStateTable());
        assertEquals("team-a-leases-WorkerMetricStats", a.workerMetricsTable());
        assertNotEquals(a.coordinatorStateTable(), b.coordinatorStateTable());
        assertNotEquals(a.workerMetricsTable(), b.workerMetricsTable());
    }

    @Test
    void anApplicationNameThatDisagreesWithTheLeaseTableIsRefused() {
        Properties file = localFile();
        file.setProperty("applicationName", "budget-worker");
        LauncherConfig.ConfigurationException e = assertThrows(LauncherConfig.ConfigurationException.class,
                () -> LauncherConfig.resolve(file, Map.of("BUDGET_LEASE_TABLE", "team-b-leases")));
        assertTrue(e.getMessage().contains("team-b-leases"), e.getMessage());
        assertThrows(LauncherConfig.ConfigurationException.class, () -> LauncherConfig.resolve(localFile(),
                Map.of("BUDGET_KCL_APPLICATION_NAME", "shared")));
        LauncherConfig agreeing = LauncherConfig.resolve(localFile(),
                Map.of("BUDGET_KCL_APPLICATION_NAME", "budget-worker"));
        assertEquals("budget-worker", agreeing.applicationName());
    }

    @Test
    void aCoordinatorTableNameTheLauncherWouldIgnoreIsRefused() {
        Properties file = localFile();
        file.setProperty("coordinatorStateTableName", "shared-CoordinatorState");
        assertThrows(LauncherConfig.ConfigurationException.class, () -> LauncherConfig.resolve(file, Map.of()));
    }

    @Test
    void jsonNamesEveryResolvedSetting() {
        String json = LauncherConfig.resolve(new Properties(), Map.of()).toJson();
        assertTrue(json.contains("\"dynamodb_endpoint\": null"), json);
        assertTrue(json.contains("\"application_name\": \"budget-worker\""), json);
    }
}

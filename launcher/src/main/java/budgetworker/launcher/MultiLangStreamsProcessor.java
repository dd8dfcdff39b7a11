package budgetworker.launcher;

import java.util.ArrayList;
import java.util.List;

import com.amazonaws.services.dynamodbv2.streamsadapter.model.DynamoDBStreamsProcessRecordsInput;
import com.amazonaws.services.dynamodbv2.streamsadapter.processor.DynamoDBStreamsShardRecordProcessor;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.retrieval.KinesisClientRecord;

/**
 * The adapter's scheduler only accepts {@link DynamoDBStreamsShardRecordProcessor}s; the
 * MultiLang processor (which speaks to `budget-worker kcl-processor`) is a plain
 * {@link ShardRecordProcessor}. This bridge passes every call through unchanged. The records
 * are the adapter's own: their data is the stream record serialised as JSON.
 */
final class MultiLangStreamsProcessor implements DynamoDBStreamsShardRecordProcessor {
    private final ShardRecordProcessor delegate;

    MultiLangStreamsProcessor(ShardRecordProcessor delegate) {
        this.delegate = delegate;
    }

    @Override
    public void initialize(InitializationInput initializationInput) {
        delegate.initialize(initializationInput);
    }

    @Override
    public void processRecords(ProcessRecordsInput processRecordsInput) {
        delegate.processRecords(processRecordsInput);
    }

    @Override
    public void processRecords(DynamoDBStreamsProcessRecordsInput input) {
        List<KinesisClientRecord> records = new ArrayList<>(input.records());
        delegate.processRecords(ProcessRecordsInput.builder()
                .records(records)
                .checkpointer(input.checkpointer())
                .cacheEntryTime(input.cacheEntryTime())
                .cacheExitTime(input.cacheExitTime())
                .millisBehindLatest(input.millisBehindLatest())
                .childShards(input.childShards())
                .isAtShardEnd(input.isAtShardEnd())
                .build());
    }

    @Override
    public void leaseLost(LeaseLostInput leaseLostInput) {
        delegate.leaseLost(leaseLostInput);
    }

    @Override
    public void shardEnded(ShardEndedInput shardEndedInput) {
        delegate.shardEnded(shardEndedInput);
    }

    @Override
    public void shutdownRequested(ShutdownRequestedInput shutdownRequestedInput) {
        delegate.shutdownRequested(shutdownRequestedInput);
    }
}

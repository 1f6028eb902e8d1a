// Parse framed Kafka responses with kafka-clients' own code, as a Java client would.
//
//   java -cp '<kafka libs>/*' ParseResponses.java <file> <api key> <version> [...]
//
// The file holds length-prefixed response frames; the arguments after it give
// each frame's API key and version, in pairs.  Prints one JSON line per frame:
// its correlation id, the node endpoints the client reads, and how many
// unknown tagged fields it skipped.
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.FetchResponse;
import org.apache.kafka.common.requests.ProduceResponse;
import org.apache.kafka.common.requests.ResponseHeader;

public class ParseResponses {
    public static void main(String[] args) throws Exception {
        ByteBuffer all = ByteBuffer.wrap(Files.readAllBytes(Path.of(args[0])));
        for (int i = 1; i + 1 < args.length; i += 2) {
            ApiKeys key = ApiKeys.forId(Short.parseShort(args[i]));
            short version = Short.parseShort(args[i + 1]);
            int size = all.getInt();
            ByteBuffer frame = all.slice(all.position(), size);
            all.position(all.position() + size);
            ResponseHeader header = ResponseHeader.parse(frame, key.responseHeaderVersion(version));
            AbstractResponse response =
                AbstractResponse.parseResponse(key, new ByteBufferAccessor(frame), version);
            StringBuilder endpoints = new StringBuilder("[");
            int unknown;
            if (response instanceof FetchResponse fetch) {
                FetchResponseData data = fetch.data();
                for (FetchResponseData.NodeEndpoint node : data.nodeEndpoints()) {
                    endpoints.append(String.format("[%d,\"%s\",%d],", node.nodeId(), node.host(), node.port()));
                }
                unknown = data.unknownTaggedFields().size();
            } else {
                ProduceResponseData data = ((ProduceResponse) response).data();
                for (ProduceResponseData.NodeEndpoint node : data.nodeEndpoints()) {
                    endpoints.append(String.format("[%d,\"%s\",%d],", node.nodeId(), node.host(), node.port()));
                }
                unknown = data.unknownTaggedFields().size();
            }
            if (endpoints.length() > 1) endpoints.setLength(endpoints.length() - 1);
            endpoints.append("]");
            System.out.printf("{\"correlation_id\":%d,\"left\":%d,\"endpoints\":%s,\"unknown_tags\":%d}%n",
                header.correlationId(), frame.remaining(), endpoints, unknown);
        }
    }
}

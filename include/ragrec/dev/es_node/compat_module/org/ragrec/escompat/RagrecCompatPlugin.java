/*
 * ragrec's compatibility module for the minimal Elasticsearch distribution.
 *
 * The distribution that Elastic publishes to Maven Central (integ-test-zip) is a real
 * Elasticsearch server without the optional modules of the full download. Two of those
 * are things ragrec and its clients rely on, so this module supplies them:
 *   - the root endpoint (GET/HEAD /), which the Python client's info()/ping() and the
 *     Airflow provider use to identify the cluster;
 *   - the built-in "english" and "cjk" analyzers (Lucene's EnglishAnalyzer and CJKAnalyzer,
 *     as in the full distribution), used by the BM25 text field of English and of Chinese
 *     (Japanese, Korean) indexes.
 * Against a full cluster (ES_URL) this module is not involved.
 */
package org.ragrec.escompat;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.cjk.CJKAnalyzer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

public class RagrecCompatPlugin extends Plugin implements ActionPlugin, AnalysisPlugin {

    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService = services.clusterService();
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RootInfoHandler());
    }

    /**
     * Lucene's English analyzer with its default stop words, and its CJK analyzer (width
     * folding, lower case, overlapping bigrams of Han, Hiragana, Katakana and Hangul, English
     * stop words): the full distribution's "english" and "cjk" analyzers.
     */
    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        return Map.of(
            "english", (indexSettings, environment, name, settings) -> new Provider<>(name, settings, new EnglishAnalyzer()),
            "cjk", (indexSettings, environment, name, settings) -> new Provider<>(name, settings, new CJKAnalyzer()));
    }

    /** One built-in analyzer, shared by every index that names it. */
    static final class Provider<A extends Analyzer> extends AbstractIndexAnalyzerProvider<A> {
        private final A analyzer;

        Provider(String name, Settings settings, A analyzer) {
            super(name, settings);
            this.analyzer = analyzer;
        }

        @Override
        public A get() {
            return analyzer;
        }
    }

    /** The cluster identity document that clients read from the root endpoint. */
    final class RootInfoHandler extends BaseRestHandler {
        @Override
        public String getName() {
            return "ragrec_root_info";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                ClusterState state = clusterService.state();
                Build build = Build.current();
                XContentBuilder body = channel.newBuilder();
                body.startObject();
                body.field("name", clusterService.getNodeName());
                body.field("cluster_name", clusterService.getClusterName().value());
                body.field("cluster_uuid", state.metadata().clusterUUID());
                body.startObject("version");
                body.field("number", build.qualifiedVersion());
                body.field("build_flavor", build.flavor());
                body.field("build_type", build.type().displayName());
                body.field("build_hash", build.hash());
                body.field("build_date", build.date());
                body.field("build_snapshot", build.isSnapshot());
                body.field("lucene_version", IndexVersion.current().luceneVersion().toString());
                body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                body.endObject();
                body.field("tagline", "You Know, for Search");
                body.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, body));
            };
        }
    }
}
